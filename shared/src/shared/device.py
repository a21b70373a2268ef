"""Device choice, precision (autocast in bf16 or fp16, loss scaling), seeding, and RNG state
capture for exact resume."""

from __future__ import annotations

import contextlib
import logging
import platform
import random
import sys
from typing import Any

import numpy as np
import torch

from shared.distributed import init_distributed
from shared.errors import UserError

# torch.utils.cpp_extension warns "No CUDA runtime is found, using CUDA_HOME=..." on every CPU
# compile where a CUDA toolkit folder exists: library noise in the user's terminal, not theirs to act on
logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)


def select_device(name: str = "auto") -> torch.device:
    """``auto`` picks cuda, then mps, then cpu; an explicit choice that is absent is a user error.

    Under torchrun this also joins the process group and returns this rank's device.
    """
    return init_distributed(_select_device(name))


def _select_device(name: str) -> torch.device:
    mps = getattr(torch.backends, "mps", None)
    mps_ok = bool(mps and mps.is_available())
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if mps_ok else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for, but torch sees no CUDA GPU; use --device cpu")
    if name == "mps" and not mps_ok:
        raise UserError("--device mps was asked for, but this machine has no MPS backend")
    if name not in ("cpu", "cuda", "mps"):
        raise UserError(f"unknown device {name!r}: use auto, cpu, cuda or mps")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all CUDA devices too)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def seed_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: derive numpy/python seeds from torch's per-worker seed."""
    worker_seed = torch.initial_seed() % 2**32
    np.random.seed(worker_seed)
    random.seed(worker_seed)


def make_generator(seed: int, *offsets: int) -> torch.Generator:
    """A CPU generator seeded from ``seed`` and optional offsets (e.g. the epoch).

    Data order that is a pure function of (seed, epoch) needs no state to resume exactly.
    """
    g = torch.Generator()
    mixed = seed
    for off in offsets:
        mixed = (mixed * 1_000_003 + off + 1) % 2**63
    g.manual_seed(mixed)
    return g


def rng_state() -> dict[str, Any]:
    """Python, numpy and torch RNG states in a form ``torch.load(weights_only=True)`` accepts."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        cuda = state["cuda"][: torch.cuda.device_count()]
        torch.cuda.set_rng_state_all(cuda)


def device_name(device: torch.device) -> str:
    """A human name for benchmark JSON: the GPU model, or the CPU with its thread count."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return "Apple MPS"
    cpu = platform.processor() or platform.machine()
    return f"CPU {cpu} ({torch.get_num_threads()} threads)"


M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter


def large_allocations_from_os(threshold: int = 4 << 20) -> bool:
    """CPU memory blocks of ``threshold`` bytes and more (activations, logits chunks) come from
    and go back to the operating system (glibc's ``mallopt(M_MMAP_THRESHOLD)``) instead of the
    heap. glibc's default raises the threshold to 32 MB as blocks are freed, after which every
    step's 4-32 MB tensors fragment the heap: a LoRA step at Llama-3.2-1B's shape held 5.5 GB
    resident for 3.2 GB of live tensors (austen-net's NOTES, "LoRA"). True where it applied
    (Linux with glibc), False elsewhere (a no-op)."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    import ctypes  # only where there is a glibc to call

    try:
        return bool(ctypes.CDLL("libc.so.6").mallopt(M_MMAP_THRESHOLD, threshold))
    except (OSError, AttributeError):
        return False


CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_int8")


def cpu_facts() -> dict[str, Any]:
    """What a CPU benchmark's figures depend on: the vendor and model (``/proc/cpuinfo`` on
    Linux), the vector capability torch dispatches to, the flags that decide the bf16 and int8
    kernels, and the BLAS torch's fp32 matrix products call."""
    info: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                info.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    flags = set(info.get("flags", "").split())
    blas = next(
        (
            part.split("=", 1)[1]
            for part in torch.__config__.show().replace(",", " ").split()
            if part.startswith("BLAS_INFO=")
        ),
        "unknown",
    )
    return {
        "cpu_vendor": info.get("vendor_id", platform.processor() or platform.machine()),
        "cpu_model": info.get("model name", platform.processor() or platform.machine()),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_flags": [f for f in CPU_FLAGS if f in flags],
        "cpu_blas": blas,
    }


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
