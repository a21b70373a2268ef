"""Where a run computes: the device and the processes that share it, precision (autocast in bf16
or fp16, loss scaling), seeding, and RNG state capture for exact resume.

Several processes (torchrun): run any trainer as ``torchrun --nproc-per-node N --no-python
<project> train ...``. ``select_device`` reads RANK / LOCAL_RANK / WORLD_SIZE / MASTER_ADDR /
MASTER_PORT and joins the group (NCCL on CUDA, gloo on CPU); without torchrun everything below
is single-process behaviour. Batches are built GLOBALLY (the same on every rank, from the same
seeded generator) and each rank keeps its rank-strided share (``shard``), so N ranks with
per-rank batch B/N see exactly what one process with batch B sees, and a checkpoint resumes on
any world size. Logging, plots, checkpoints and run folders happen on rank 0 only; metrics are
averaged across ranks. ``shard_fsdp`` (a trainer's ``--fsdp``): instead of a full copy of the
model per rank (DDP), PyTorch's FSDP2 ``fully_shard`` splits every parameter, its gradient and
its optimizer state across the ranks, and gathers a block's weights only while that block runs.
Checkpoints are gathered (``gathered_state``): one file with whole tensors, the same weights any
run writes, resumed on any number of ranks.
"""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import random
import sys
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import FSDPModule, fully_shard
from torch.nn.parallel import DistributedDataParallel

from shared.errors import UserError

# torch.utils.cpp_extension warns "No CUDA runtime is found, using CUDA_HOME=..." on every CPU
# compile where a CUDA toolkit folder exists: library noise in the user's terminal, not theirs to act on
logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)


def seeded_device(name: str, seed: int) -> torch.device:
    """Where a run computes (``select_device``), with Python's, numpy's and torch's generators
    seeded: the first thing a training command does."""
    seed_everything(seed)
    return select_device(name)


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


def cpu_load() -> float | None:
    """The last minute's load average per CPU this process may use (1.0: every core busy), or
    None where the system does not say. Other work on the cores changes what is faster: compiled
    CPU code, whose threads spin waiting for each other, lost to eager code on a busy machine."""
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return load / max(cores or 1, 1)


def compiles(setting: str | bool, device: torch.device, pays_off: bool = False) -> bool:
    """Whether ``--compile on|off|auto`` asks for ``torch.compile`` on ``device``: on; or auto on
    CUDA, and elsewhere where the work ``pays_off`` (long enough to repay the compile time: a
    CPU compiles for tens of seconds). The one rule for training, benches and generation."""
    if isinstance(setting, bool):
        return setting
    if setting == "auto":
        return device.type == "cuda" or pays_off
    return setting == "on"


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


# --- several processes (torchrun) ------------------------------------------------------------


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    """This process's rank (torchrun's RANK before the group is joined, 0 without torchrun)."""
    if is_distributed():
        return dist.get_rank()
    return int(os.environ.get("RANK", 0)) if launched_by_torchrun() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    return rank() == 0


def launched_by_torchrun() -> bool:
    """torchrun sets RANK, LOCAL_RANK and WORLD_SIZE for every worker (one process included: its
    process group is the path a multi-GPU run takes, so it is set up even then)."""
    return all(k in os.environ for k in ("RANK", "LOCAL_RANK", "WORLD_SIZE"))


def init_distributed(device: torch.device) -> torch.device:
    """Join the process group when launched by torchrun; returns this rank's device."""
    if not launched_by_torchrun() or is_distributed():
        if is_distributed() and device.type == "cuda":
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        return device
    if device.type == "cuda":
        local = int(os.environ.get("LOCAL_RANK", 0))
        torch.cuda.set_device(local)
        dist.init_process_group("nccl", device_id=torch.device("cuda", local))
        return torch.device("cuda", local)
    dist.init_process_group("gloo")
    return device


def cleanup(finished: bool = True) -> None:
    """Tear the process group down. After a command that finished, every rank first waits for the
    others: a rank that destroys its group while rank 0 is still reporting can abort inside gloo
    ("terminate called without an active exception"). After a failure there is no waiting (the
    other ranks may never arrive; torchrun stops them)."""
    if is_distributed():
        if finished:
            dist.barrier()
        dist.destroy_process_group()


def broadcast_object(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank (e.g. the run folder name)."""
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_reduce_mean(values: dict[str, float]) -> dict[str, float]:
    if not is_distributed() or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64)
    if dist.get_backend() == "nccl":
        t = t.cuda()
    dist.all_reduce(t)
    return {k: float(v) / world_size() for k, v in zip(keys, t.tolist(), strict=True)}


def any_rank(*flags: bool) -> tuple[bool, ...]:
    """Each flag, True on every rank when it is True on any (so all ranks stop together)."""
    if not is_distributed():
        return tuple(bool(f) for f in flags)
    t = torch.tensor([1.0 if f else 0.0 for f in flags])
    if dist.get_backend() == "nccl":
        t = t.cuda()
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return tuple(bool(v > 0) for v in t.tolist())


def shard(batch: Any, batch_size: int | None = None) -> Any:
    """This rank's rank-strided share of a global batch (tensors whose first dim is the batch)."""
    if not is_distributed():
        return batch
    if isinstance(batch, torch.Tensor):
        if batch_size is None or (batch.dim() > 0 and batch.shape[0] == batch_size):
            return batch[rank() :: world_size()]
        return batch
    if isinstance(batch, (list, tuple)):
        size = batch_size
        if size is None:
            first = next((b for b in batch if isinstance(b, torch.Tensor) and b.dim() > 0), None)
            size = first.shape[0] if first is not None else None
        return type(batch)(shard(b, size) for b in batch)
    return batch


def shard_fsdp(model: nn.Module, units: list[nn.Module], device: torch.device) -> nn.Module:
    """FSDP2 over every rank: each of ``units`` (a transformer's blocks) is its own shard group,
    then the model itself (embeddings, final norm, head). In place, before the optimizer is built
    (the parameters become ``DTensor`` shards). One process: the model as it is."""
    if not is_distributed():
        return model
    mesh = init_device_mesh(device.type, (world_size(),))
    for unit in units:
        fully_shard(unit, mesh=mesh)
    fully_shard(model, mesh=mesh)
    return model


def is_sharded(model: nn.Module) -> bool:
    return isinstance(model, FSDPModule)


GATHERED = StateDictOptions(full_state_dict=True, cpu_offload=True)


def gathered_state(model: nn.Module, optimizer: torch.optim.Optimizer) -> tuple[dict, dict]:
    """A sharded model's and optimizer's state as whole tensors on rank 0 (every rank must call
    it: the shards are gathered). The optimizer's state is keyed by parameter name."""
    return get_model_state_dict(model, options=GATHERED), get_optimizer_state_dict(
        model, optimizer, options=GATHERED
    )


def load_gathered_state(
    model: nn.Module, optimizer: torch.optim.Optimizer, weights: dict, optim_state: dict
) -> None:
    """The reverse of ``gathered_state``: every rank keeps its shard of the whole tensors."""
    options = StateDictOptions(full_state_dict=True)
    set_model_state_dict(model, weights, options=options)
    set_optimizer_state_dict(model, optimizer, optim_state, options=options)


def wrap_ddp(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    if not is_distributed() or is_sharded(model):  # FSDP2 reduces gradients itself
        return model
    if device.type == "cuda":
        # batch statistics over the GLOBAL batch, so N ranks train like one process (in place:
        # the caller's module keeps its identity and state_dict keys). SyncBatchNorm has no CPU
        # kernel: with gloo on CPU each rank normalises its own share.
        torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    ids = [device.index] if device.type == "cuda" else None
    # buffers are broadcast from rank 0 before each forward only when one is persistent (batch
    # norm's running statistics): frozen weights kept as non-persistent buffers (LoRA's base) are
    # identical on every rank and would cost a full copy of the model per step
    persistent = set(model.state_dict())
    broadcast = any(name in persistent for name, _ in model.named_buffers())
    return DistributedDataParallel(model, device_ids=ids, broadcast_buffers=broadcast)
