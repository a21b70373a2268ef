"""Spectrogram windows: computed in batches, cached on disk keyed by every parameter and the clip
list.

Two front ends, chosen by ``FeatureParams.frontend``:

- ``logmel`` (ours, for ResNet18 and the small CNN): one STFT per clip, log-mel in dB;
- ``kaldi_fbank`` (for the Audio Spectrogram Transformer): Kaldi's 25 ms / 10 ms log mel filter
  bank at 16 kHz, the features AST was pretrained on, equal to transformers' ``ASTFeatureExtractor``
  (tested to 1e-4); AST's own normalisation is the classifier's ``normalise``.

Either way one transform per clip (not per window): the clip's spectrogram is cut into fixed
windows (the last one padded), so overlapping windows cost nothing extra.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torchaudio
from torchaudio.compliance.kaldi import get_mel_banks

from audio_net.audio import AudioError, read_audio
from audio_net.dataset import Clip, labels_of
from shared.errors import UserError
from shared.files import atomic_path
from shared.progress import progress, warn

log = logging.getLogger(__name__)

FRONTENDS = ("logmel", "kaldi_fbank")


@dataclass(frozen=True)
class FeatureParams:
    sample_rate: int = 22050
    n_fft: int = 2048  # kaldi_fbank: the frame length in samples (400: 25 ms at 16 kHz)
    hop_length: int = 512
    n_mels: int = 128
    window_seconds: float = 3.0
    hop_seconds: float = 1.5
    top_db: float = 80.0
    min_seconds: float = 1.0
    frontend: str = "logmel"  # or "kaldi_fbank" (AST); older checkpoints hold no such key

    @property
    def window_frames(self) -> int:
        if self.frontend == "kaldi_fbank":  # AST's max_length: 1024 frames of 10 ms
            return round(self.window_seconds * self.sample_rate / self.hop_length)
        return int(self.window_seconds * self.sample_rate) // self.hop_length + 1  # 130

    @property
    def hop_frames(self) -> int:
        return max(1, round(self.hop_seconds * self.sample_rate / self.hop_length))  # 65

    def key(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:12]


class LogMel(torch.nn.Module):
    """Waveforms (B, L) -> log-mel (B, n_mels, frames) in dB, floored ``top_db`` below each clip's peak.

    The same numbers as ``torchaudio.transforms.MelSpectrogram`` (Hann window, centred frames,
    power 2, HTK mel filters built for THIS sample rate: the original forgot to pass it), but the
    power is taken as re*re + im*im instead of ``abs(z)**2``: complex ``abs`` cost more than the FFT.
    """

    def __init__(self, p: FeatureParams) -> None:
        super().__init__()
        self.p = p
        self.register_buffer("window", torch.hann_window(p.n_fft), persistent=False)
        fbanks = torchaudio.functional.melscale_fbanks(
            p.n_fft // 2 + 1,
            f_min=0.0,
            f_max=p.sample_rate / 2,
            n_mels=p.n_mels,
            sample_rate=p.sample_rate,
        )
        self.register_buffer("fbanks", fbanks.T.contiguous(), persistent=False)  # (n_mels, n_freqs)

    def power(self, waves: torch.Tensor) -> torch.Tensor:
        spec = torch.stft(
            waves,
            self.p.n_fft,
            self.p.hop_length,
            window=self.window,
            center=True,
            pad_mode="reflect",
            return_complex=True,
        )
        return torch.addcmul(spec.real.square(), spec.imag, spec.imag)

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        mel = torch.matmul(self.fbanks, self.power(waves))
        db = 10.0 * torch.log10(mel.clamp_min(1e-10))
        peak = db.amax(dim=(-2, -1), keepdim=True)
        return torch.maximum(db, peak - self.p.top_db)

    def frames(self, samples: int) -> int:
        """Frames of a clip of ``samples`` (centred frames: one every hop, plus one)."""
        return samples // self.p.hop_length + 1

    @property
    def min_samples(self) -> int:
        return (self.p.window_frames - 1) * self.p.hop_length

    def pad_value(self, spec: torch.Tensor) -> torch.Tensor:
        """What fills a window past the clip's end: its own floor (silence)."""
        return spec.amin()


class KaldiFbank(torch.nn.Module):
    """Waveforms (B, L) -> Kaldi log mel filter banks (B, n_mels, frames), batched on the device:
    ``torchaudio.compliance.kaldi.fbank`` with AST's settings (Hann window of ``n_fft`` samples
    every ``hop_length``, frames snipped at the edges, DC offset removed and pre-emphasis 0.97 per
    frame, a 512-point power spectrum, Kaldi's mel banks from 20 Hz to Nyquist, natural log
    floored at float32's epsilon, no dither), for a whole batch at once instead of one clip."""

    PREEMPHASIS = 0.97

    def __init__(self, p: FeatureParams) -> None:
        super().__init__()
        self.p = p
        self.fft = 1 << (p.n_fft - 1).bit_length()  # the next power of two: 512 for 400
        self.register_buffer("window", torch.hann_window(p.n_fft, periodic=False), False)
        banks, _ = get_mel_banks(
            p.n_mels, self.fft, float(p.sample_rate), 20.0, 0.0, 100.0, -500.0, 1.0
        )
        banks = torch.nn.functional.pad(banks, (0, 1))  # (n_mels, fft/2 + 1): Nyquist gets 0
        self.register_buffer("fbanks", banks.contiguous(), persistent=False)

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        frames = waves.unfold(-1, self.p.n_fft, self.p.hop_length)  # (B, frames, n_fft)
        frames = frames - frames.mean(-1, keepdim=True)
        previous = torch.cat([frames[..., :1], frames[..., :-1]], dim=-1)
        frames = (frames - self.PREEMPHASIS * previous) * self.window
        spec = torch.fft.rfft(frames, n=self.fft)
        power = torch.addcmul(spec.real.square(), spec.imag, spec.imag)
        mel = torch.matmul(power, self.fbanks.T)
        return mel.clamp_min(torch.finfo(torch.float32).eps).log().transpose(-1, -2)

    def frames(self, samples: int) -> int:
        return 1 + (samples - self.p.n_fft) // self.p.hop_length if samples >= self.p.n_fft else 0

    @property
    def min_samples(self) -> int:
        return self.p.n_fft

    def pad_value(self, spec: torch.Tensor) -> torch.Tensor:
        """Zeros, as ``ASTFeatureExtractor`` pads a short clip (before its normalisation)."""
        return spec.new_zeros(())


def frontend(p: FeatureParams) -> LogMel | KaldiFbank:
    """The module that turns waveforms into the spectrograms ``p`` describes."""
    if p.frontend == "kaldi_fbank":
        return KaldiFbank(p)
    return LogMel(p)


def n_windows(n_frames: int, p: FeatureParams) -> int:
    return 1 + max(0, math.ceil((n_frames - p.window_frames) / p.hop_frames))


def windows_of(
    spec: torch.Tensor, n_frames: int, p: FeatureParams, floor: torch.Tensor | None = None
) -> torch.Tensor:
    """Cut one clip's spectrogram (n_mels, >= needed frames) into (n, n_mels, window_frames);
    frames past ``n_frames`` become ``floor`` (default: the clip's minimum, i.e. silence)."""
    n = n_windows(n_frames, p)
    needed = p.window_frames + (n - 1) * p.hop_frames
    spec = spec[:, :needed].clone()
    if floor is None:
        floor = spec[:, :n_frames].amin()
    spec[:, n_frames:] = floor  # the padded tail of the last window is silence, not another clip
    if spec.shape[1] < needed:
        spec = torch.nn.functional.pad(spec, (0, needed - spec.shape[1]), value=float(floor))
    return spec.unfold(1, p.window_frames, p.hop_frames).permute(1, 0, 2)


@torch.no_grad()
def featurize_waves(
    waves: list[torch.Tensor], logmel: LogMel | KaldiFbank, device: torch.device
) -> list[torch.Tensor]:
    """Spectrogram windows for each waveform, computed as one padded batch on ``device``."""
    p = logmel.p
    longest = max(len(w) for w in waves)
    batch = torch.zeros(len(waves), max(longest, logmel.min_samples), device=device)
    for i, w in enumerate(waves):
        batch[i, : len(w)] = w.to(device)
    specs = logmel(batch)
    out = []
    for i, w in enumerate(waves):
        n_frames = logmel.frames(len(w))
        out.append(windows_of(specs[i], n_frames, p, logmel.pad_value(specs[i, :, :n_frames])))
    return out


@dataclass
class Features:
    """Every usable clip's windows, concatenated, with the clip each window came from."""

    windows: torch.Tensor  # (N, n_mels, frames) float16
    clip_of_window: torch.Tensor  # (N,) index into ``names``
    names: list[str]  # clip names, in clip-index order
    labels: torch.Tensor  # (clips,) label index per clip
    skipped: list[str]  # "path: reason" for each unusable file
    label_names: list[str] = field(default_factory=list)  # the data set's labels, index order

    def select(self, names: set[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Windows, window labels and window->clip ids of the clips in ``names``."""
        keep_clip = torch.tensor([n in names for n in self.names], dtype=torch.bool)
        mask = keep_clip[self.clip_of_window]
        clip_ids = self.clip_of_window[mask]
        return self.windows[mask], self.labels[clip_ids], clip_ids


def decode_all(paths: list[Path], p: FeatureParams, workers: int | None = None):
    """Decode in threads (libsndfile and resampling release the GIL); yields (index, wave|error)."""
    workers = workers or min(4, os.cpu_count() or 1)

    def read(i_path):
        i, path = i_path
        try:
            return i, read_audio(path, p.sample_rate, p.min_seconds)
        except AudioError as exc:
            return i, exc

    with ThreadPoolExecutor(workers) as pool:
        yield from pool.map(read, enumerate(paths))


def compute_features(
    clips: list[Clip],
    p: FeatureParams,
    device: torch.device,
    *,
    batch: int | None = None,
    quiet: bool = False,
) -> Features:
    # Small batches keep the STFT's working set in cache on CPUs (measured: NOTES.md, "Speed");
    # GPUs want large ones.
    batch = batch or (64 if device.type == "cuda" else 2)
    logmel = frontend(p).to(device)
    out_windows, out_clip, names, labels, skipped = [], [], [], [], []
    pending: list[tuple[Clip, torch.Tensor]] = []

    def flush():
        for (clip, _), wins in zip(
            pending, featurize_waves([w for _, w in pending], logmel, device), strict=True
        ):
            out_clip.append(torch.full((len(wins),), len(names), dtype=torch.int32))
            out_windows.append(wins.to("cpu", torch.float16))
            names.append(clip.name)
            labels.append(clip.label_id)
        pending.clear()

    padded = 0
    bar = progress(total=len(clips), quiet=quiet, desc="featurize", unit="clip")
    for i, result in decode_all([c.path for c in clips], p):
        bar.update(1)
        if isinstance(result, AudioError):
            skipped.append(str(result))
            continue
        pending.append((clips[i], result))
        padded += len(result) < p.window_seconds * p.sample_rate
        if len(pending) == batch:
            flush()
    if pending:
        flush()
    bar.close()
    report_skips(skipped, padded, len(names), p, quiet)
    return Features(
        windows=torch.cat(out_windows),
        clip_of_window=torch.cat(out_clip).long(),
        names=names,
        labels=torch.tensor(labels, dtype=torch.long),
        skipped=skipped,
    )


def report_skips(skipped: list[str], padded: int, usable: int, p: FeatureParams, quiet: bool):
    """One counted warning for the files that could not be used, one line for the padded ones;
    no usable file at all is the user's error."""
    if skipped:
        warn(
            f"skipped {len(skipped)} unusable audio file(s): "
            + "; ".join(skipped[:5])
            + (" ..." if len(skipped) > 5 else "")
        )
    if padded:
        log.info(
            f"{padded} clip(s) shorter than a window ({p.window_seconds:g} s): padded with silence"
        )
    if not usable:
        raise UserError("no usable audio: every file was skipped")


def cache_key(clips: list[Clip], p: FeatureParams) -> str:
    h = hashlib.sha256(p.key().encode())
    for c in clips:
        st = c.path.stat()
        h.update(f"{c.path.name}|{c.label_id}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def load_features(
    clips: list[Clip],
    p: FeatureParams,
    cache_dir: Path | None,
    device: torch.device,
    *,
    quiet: bool = False,
) -> tuple[Features, bool]:
    """Features from the cache when the clips and parameters match, else computed and cached.

    Returns (features, whether they came from the cache).
    """
    path = cache_dir / f"features-{cache_key(clips, p)}.pt" if cache_dir is not None else None
    if path is not None and path.is_file():
        try:
            data = torch.load(path, weights_only=True)
            return Features(**{**data, "label_names": labels_of(clips)}), True
        except (RuntimeError, EOFError, OSError, TypeError, KeyError):
            warn(f"feature cache {path} is unreadable: computing it again")
    t0 = time.perf_counter()
    feats = compute_features(clips, p, device, quiet=quiet)
    feats.label_names = labels_of(clips)
    log.info(
        f"featurized {len(feats.names)} clips into {len(feats.windows)} windows in "
        f"{time.perf_counter() - t0:.1f} s"
    )
    if path is not None:
        stored = {f: getattr(feats, f) for f in feats.__dataclass_fields__ if f != "label_names"}
        with atomic_path(path) as tmp:
            torch.save(stored, tmp)
    return feats, False
