"""Reading audio (soundfile), mono mix, resampling to the model's rate (torchaudio)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

SAMPLE_RATE = 22050


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
        reason = str(exc).splitlines()[0][:120]
        if "does not exist" in reason:  # libsndfile's words for a file it cannot parse at all
            reason = f"not a recognised audio file ({path.suffix or 'no extension'})"
        raise AudioError(f"{path}: cannot decode ({reason})") from exc
    if data.size == 0:
        raise AudioError(f"{path}: no audio samples")
    mono = data[:, 0] if data.shape[1] == 1 else data.mean(axis=1)
    wave = torch.from_numpy(np.ascontiguousarray(mono))
    if not torch.isfinite(wave).all():
        raise AudioError(f"{path}: non-finite samples")
    if rate != sample_rate:
        wave = AF.resample(wave, rate, sample_rate)
    if len(wave) < min_seconds * sample_rate:
        raise AudioError(
            f"{path}: {len(wave) / sample_rate:.2f} s is shorter than {min_seconds:g} s"
        )
    return wave
