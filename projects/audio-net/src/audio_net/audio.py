"""Reading audio (soundfile), mono mix, resampling to the model's rate (torchaudio)."""

from __future__ import annotations

import re
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
    if not path.is_file():
        raise AudioError(f"{path}: no such file")
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        # libsndfile's words name the file ("Error opening '/path': ..."): keep the reason only
        reason = re.sub(r"^Error opening .*?: ", "", reason.replace(str(path), path.name))[:300]
        if "does not exist" in reason:  # libsndfile's words for a file it cannot parse at all
            reason = f"not a recognised audio file ({path.suffix or 'no extension'})"
        raise AudioError(f"{path}: cannot decode ({reason})") from exc
    if data.size == 0:
        raise AudioError(f"{path}: no audio samples")
    mono = data[:, 0] if data.shape[1] == 1 else data.mean(axis=1)
    wave = torch.from_numpy(np.ascontiguousarray(mono))
    if not torch.isfinite(wave).all():
        raise AudioError(f"{path}: non-finite samples")
    if not MIN_RATE <= rate <= MAX_RATE:
        raise AudioError(
            f"{path}: sample rate {rate:,} Hz is outside {MIN_RATE:,}-{MAX_RATE:,} Hz; convert it "
            f"first (e.g. ffmpeg -i IN -ar {sample_rate} OUT.wav)"
        )
    wave = resample(wave, rate, sample_rate)
    if len(wave) < min_seconds * sample_rate:
        raise AudioError(
            f"{path}: {len(wave) / sample_rate:.2f} s is shorter than {min_seconds:g} s"
        )
    return wave


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
