"""Reading audio (soundfile), mono mix, resampling to the model's rate (torchaudio)."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

SAMPLE_RATE = 22050
MIN_RATE, MAX_RATE = 1_000, 384_000  # sample rates accepted (telephone to studio audio)
# torchaudio's polyphase resampler builds a kernel of (new/g) x (orig/g) taps, g = gcd of the rates:
# 11,027 Hz -> 22,050 Hz (g = 1) asks for gigabytes. Where the exact ratio has larger terms, it is
# replaced by the nearest fraction whose terms stay <= MAX_RATIO_TERM (kernel of at most ~1000 x
# 1000 taps); over all accepted rates to 16 or 22.05 kHz that changes pitch and tempo by at most
# 0.051% (under one cent), far below what a listener or the model can tell.
MAX_RATIO_TERM = 1000


class AudioError(Exception):
    """A file that cannot be used: missing, undecodable, empty or too short."""


def read_audio(
    path: Path, sample_rate: int = SAMPLE_RATE, min_seconds: float = 1.0
) -> torch.Tensor:
    """Mono float32 waveform at ``sample_rate``; ``AudioError`` for anything unusable."""
    path = Path(path)
    with open_audio(path) as f:
        wave = _mono(path, read_frames(path, f, -1), f.samplerate, sample_rate)
    if len(wave) == 0:
        raise AudioError(f"{path}: no audio samples")
    if len(wave) < min_seconds * sample_rate:
        raise AudioError(
            f"{path}: {len(wave) / sample_rate:.2f} s is shorter than {min_seconds:g} s"
        )
    return wave


def read_audio_segments(
    path: Path,
    sample_rate: int = SAMPLE_RATE,
    min_seconds: float = 1.0,
    segment_seconds: float = 30.0,
) -> Iterator[tuple[float, torch.Tensor]]:
    """(start in seconds, mono waveform at ``sample_rate``) for each ``segment_seconds`` of the
    file, decoded one segment at a time: memory stays flat in the recording's length (a two-hour
    recording is 240 segments of 30 s, never one 10 GB array). A file no longer than one segment
    is exactly ``read_audio``'s waveform; a last segment shorter than ``min_seconds`` is dropped
    when earlier ones exist. ``AudioError`` for anything unusable."""
    path = Path(path)
    with open_audio(path) as f:
        down, _ = resample_ratio(f.samplerate, sample_rate)
        # whole resampling periods per segment, so segments join without drift
        frames = max(down, round(segment_seconds * f.samplerate / down) * down)
        start = 0
        while True:
            wave = _mono(path, read_frames(path, f, frames), f.samplerate, sample_rate)
            if len(wave) == 0:
                if start == 0:
                    raise AudioError(f"{path}: no audio samples")
                return
            if len(wave) < min_seconds * sample_rate:
                if start == 0:
                    raise AudioError(
                        f"{path}: {len(wave) / sample_rate:.2f} s is shorter than {min_seconds:g} s"
                    )
                return
            yield start / f.samplerate, wave
            start += frames


@contextlib.contextmanager
def open_audio(path: Path) -> Iterator[sf.SoundFile]:
    """The file opened for reading by libsndfile, its rate checked; ``AudioError`` otherwise."""
    if not path.is_file():
        raise AudioError(f"{path}: no such file")
    try:
        f = sf.SoundFile(str(path))
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError) as exc:
        raise AudioError(f"{path}: cannot decode ({_reason(exc, path)})") from exc
    with f:
        if not MIN_RATE <= f.samplerate <= MAX_RATE:
            raise AudioError(
                f"{path}: sample rate {f.samplerate:,} Hz is outside {MIN_RATE:,}-{MAX_RATE:,} "
                f"Hz; convert it first (e.g. ffmpeg -i IN -ar {SAMPLE_RATE} OUT.wav)"
            )
        yield f


def read_frames(path: Path, f: sf.SoundFile, frames: int) -> np.ndarray:
    """The next ``frames`` frames (all that are left for -1), float32, (frames, channels)."""
    try:
        return f.read(frames, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError) as exc:
        raise AudioError(f"{path}: cannot decode ({_reason(exc, path)})") from exc


def _reason(exc: Exception, path: Path) -> str:
    reason = str(exc).splitlines()[0] if str(exc).strip() else exc.__class__.__name__
    # libsndfile's words name the file ("Error opening '/path': ..."): keep the reason only
    reason = re.sub(r"^Error opening .*?: ", "", reason.replace(str(path), path.name))[:300]
    if "does not exist" in reason:  # libsndfile's words for a file it cannot parse at all
        reason = f"not a recognised audio file ({path.suffix or 'no extension'})"
    return reason


def _mono(path: Path, data: np.ndarray, rate: int, sample_rate: int) -> torch.Tensor:
    """Channels averaged, checked finite, resampled to ``sample_rate``."""
    if data.size == 0:
        return torch.zeros(0)
    mono = data[:, 0] if data.shape[1] == 1 else data.mean(axis=1)
    wave = torch.from_numpy(np.ascontiguousarray(mono, dtype=np.float32))
    if not torch.isfinite(wave).all():
        raise AudioError(f"{path}: non-finite samples")
    return resample(wave, rate, sample_rate)


def resample_ratio(orig: int, new: int) -> tuple[int, int]:
    """(orig', new') with new'/orig' = new/orig, or its nearest fraction with both terms
    <= MAX_RATIO_TERM where the exact one has larger terms."""
    ratio = Fraction(new, orig)
    if max(ratio.numerator, ratio.denominator) > MAX_RATIO_TERM:
        if ratio < 1:
            ratio = ratio.limit_denominator(MAX_RATIO_TERM)
        else:
            ratio = 1 / (1 / ratio).limit_denominator(MAX_RATIO_TERM)
    return ratio.denominator, ratio.numerator


def resample(wave: torch.Tensor, orig: int, new: int) -> torch.Tensor:
    """``wave`` from ``orig`` Hz to ``new`` Hz with a bounded kernel whatever the two rates."""
    if orig == new:
        return wave
    down, up = resample_ratio(orig, new)
    return AF.resample(wave, down, up)
