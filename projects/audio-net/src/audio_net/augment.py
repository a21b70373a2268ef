"""Spectrogram augmentations for TRAINING windows only, batched on the device, each switchable.

Randomness comes from a generator seeded by (seed, step), so a resumed run augments exactly as the
uninterrupted one would have.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class AugmentConfig:
    freq_mask: int = 24  # SpecAugment: max masked mel bands (0: off)
    time_mask: int = 30  # SpecAugment: max masked frames (0: off)
    time_shift: int = 16  # random circular shift of up to this many frames (0: off)
    gain_db: float = 6.0  # random gain of up to +-gain_db (0: off)
    noise_std: float = 0.1  # Gaussian noise, in units of the normalised input (0: off)
    mixup_alpha: float = 0.2  # mixup Beta(alpha, alpha) (0: off)
    pitch_shift: float = 0.0  # shift along the mel axis by up to this many bands (0: off)
    time_stretch: float = 0.0  # stretch time by a factor in [1 - s, 1 + s] (0: off)


def warp(x: torch.Tensor, pitch_shift: float, time_stretch: float, g: torch.Generator):
    """Pitch shift (a translation along the mel axis, which is close to log-frequency) and tempo
    change (a stretch along time) for the whole batch in one ``grid_sample``; edges repeat."""
    n, mels, frames = x.shape
    scale = 1 + (torch.rand(n, generator=g) * 2 - 1) * time_stretch
    shift = (torch.rand(n, generator=g) * 2 - 1) * pitch_shift * 2 / mels
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 1, 1], theta[:, 1, 2] = scale, 1.0, shift
    grid = torch.nn.functional.affine_grid(theta, (n, 1, mels, frames), align_corners=False)
    out = torch.nn.functional.grid_sample(
        x.unsqueeze(1), grid.to(x.device, x.dtype), padding_mode="border", align_corners=False
    )
    return out.squeeze(1)


def _mask(x: torch.Tensor, max_width: int, dim: int, g: torch.Generator) -> torch.Tensor:
    """Zero one random band of up to ``max_width`` along ``dim`` (1: mel, 2: time) per example."""
    n, size = x.shape[0], x.shape[dim]
    width = (torch.rand(n, generator=g) * (max_width + 1)).long().clamp(max=size)
    start = (torch.rand(n, generator=g) * (size - width + 1)).long()
    pos = torch.arange(size)
    band = (pos[None] >= start[:, None]) & (pos[None] < (start + width)[:, None])
    band = band.to(x.device)
    shape = (n, size, 1) if dim == 1 else (n, 1, size)
    return x.masked_fill(band.view(shape), 0.0)


def augment(
    x: torch.Tensor, y: torch.Tensor, cfg: AugmentConfig, g: torch.Generator, num_classes: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """x: normalised log-mels (N, mels, frames); y: labels. Returns (x, soft targets (N, C))."""
    n = x.shape[0]
    dev = x.device
    if cfg.pitch_shift or cfg.time_stretch:
        x = warp(x, cfg.pitch_shift, cfg.time_stretch, g)
    if cfg.gain_db:
        # in dB space a gain is an offset; inputs are normalised by the data set's std (~16 dB)
        x = x + ((torch.rand(n, 1, 1, generator=g) * 2 - 1) * cfg.gain_db / 16.0).to(dev)
    if cfg.time_shift:
        shifts = (torch.rand(n, generator=g) * (2 * cfg.time_shift + 1)).long() - cfg.time_shift
        idx = (torch.arange(x.shape[2])[None] - shifts[:, None]) % x.shape[2]
        x = torch.gather(x, 2, idx.to(dev)[:, None, :].expand_as(x))
    if cfg.freq_mask:
        x = _mask(x, cfg.freq_mask, 1, g)
    if cfg.time_mask:
        x = _mask(x, cfg.time_mask, 2, g)
    if cfg.noise_std:
        x = x + cfg.noise_std * torch.randn(x.shape, generator=g).to(dev)
    target = torch.nn.functional.one_hot(y, num_classes).float()
    if cfg.mixup_alpha:
        u = torch.rand(n, generator=g)
        # Beta(a, a) as a ratio of two Gamma(a) draws, taken from the seeded generator
        ga = torch._standard_gamma(torch.full((2, n), cfg.mixup_alpha), generator=g)
        lam = (ga[0] / (ga[0] + ga[1])).clamp(0, 1)
        lam = torch.maximum(lam, 1 - lam).to(dev)  # the first sample dominates
        perm = torch.argsort(u).to(dev)
        x = lam[:, None, None] * x + (1 - lam[:, None, None]) * x[perm]
        target = lam[:, None] * target + (1 - lam[:, None]) * target[perm]
    return x, target
