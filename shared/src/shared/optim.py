"""The optimizer and its learning-rate schedule: AdamW (fused where PyTorch has the kernel),
weight-decay groups, and the schedules stepped once per optimizer step (warmup + cosine, one-cycle).

Apart from ``shared.training`` so that a model's ``configure_optimizers`` can use it without
loading the training loop (``generate`` and ``predict`` import models, never the loop).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn


def adamw(params, device: torch.device, **kwargs: Any) -> torch.optim.AdamW:
    """AdamW, fused (one kernel for all parameters) where PyTorch has that kernel: CUDA and CPU.

    On CPU it is faster than the default multi-tensor path (measured: intro-nn NOTES.md, "The
    bench").
    """
    return torch.optim.AdamW(params, fused=device.type in ("cuda", "cpu"), **kwargs)


def decay_groups(
    named_parameters: Iterable[tuple[str, nn.Parameter]], weight_decay: float, **group: Any
) -> list[dict[str, Any]]:
    """Parameter groups for AdamW: weight decay on matrices (weights, embeddings), none on vectors
    (biases, norm gains) and scalars (a learnable temperature). Extra keys go into both groups."""
    params = [p for _, p in named_parameters if p.requires_grad]
    return [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay, **group},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0, **group},
    ]


def warmup_cosine_factor(step: int, warmup_steps: int, total_steps: int, min_ratio: float) -> float:
    """Linear warmup from ~0 to 1, then cosine decay to ``min_ratio`` at ``total_steps``."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    if total_steps <= warmup_steps:
        return 1.0
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def warmup_cosine(
    optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int, min_ratio: float = 0.1
) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: warmup_cosine_factor(s, warmup_steps, total_steps, min_ratio)
    )


def one_cycle(
    optimizer: torch.optim.Optimizer,
    max_lr: float | list[float],
    total_steps: int,
    pct_start: float = 0.25,
) -> torch.optim.lr_scheduler.OneCycleLR:
    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=max_lr, total_steps=max(total_steps, 1), pct_start=pct_start
    )
