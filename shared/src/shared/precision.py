"""Autocast and loss scaling: bf16 where the hardware has it, fp16 with a GradScaler otherwise."""

from __future__ import annotations

import contextlib
import sys

import torch

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` is bf16 on CUDA and fp32 elsewhere; bf16 on a CUDA GPU without bf16 (pre-Ampere)
    becomes fp16; fp16 on CPU becomes bf16."""
    if precision == "auto":
        precision = "bf16" if device.type == "cuda" else "fp32"
    if precision not in DTYPES:
        raise ValueError(f"unknown precision {precision!r}")
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        print("warning: this GPU has no bf16; using fp16 with loss scaling", file=sys.stderr)
        return "fp16"
    if precision == "fp16" and device.type == "cpu":
        print("warning: fp16 autocast is slow on CPU; using bf16", file=sys.stderr)
        return "bf16"
    return precision


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """The autocast context for ``precision`` (a no-op for fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=DTYPES[precision])


def grad_scaler(device: torch.device, precision: str) -> torch.amp.GradScaler:
    """A GradScaler that is active for fp16 only (bf16 and fp32 need no loss scaling)."""
    return torch.amp.GradScaler(device.type, enabled=precision == "fp16")
