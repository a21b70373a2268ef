"""Optimizer construction: AdamW (fused where PyTorch has the kernel) and weight-decay groups.

Apart from ``shared.training`` so that a model's ``configure_optimizers`` can use it without
loading the training loop (``generate`` and ``predict`` import models, never the loop).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn


def adamw(params, device: torch.device, **kwargs: Any) -> torch.optim.AdamW:
    """AdamW, fused (one kernel for all parameters) where PyTorch has that kernel: CUDA and CPU.

    On CPU it made an MNIST MLP epoch 1.4x faster than the default multi-tensor path.
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
