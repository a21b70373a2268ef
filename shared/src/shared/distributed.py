"""torch.distributed from torchrun's environment: DDP, rank-0-only side effects, global negatives.

Run any trainer as ``torchrun --nproc-per-node N --no-python <project> train ...``. Inside:

- ``init_distributed`` reads RANK / LOCAL_RANK / WORLD_SIZE / MASTER_ADDR / MASTER_PORT and joins
  the group (NCCL on CUDA, gloo on CPU); without torchrun it is a no-op and everything below
  degrades to single-process behaviour.
- Batches are built GLOBALLY (the same on every rank, from the same seeded generator) and each rank
  keeps its rank-strided share (``shard``), so N ranks with per-rank batch B/N see exactly what one
  process with batch B sees, and a checkpoint resumes on any world size.
- Logging, plots, checkpoints and run folders happen on rank 0 only; metrics are averaged across ranks.
- ``shard_fsdp`` (a trainer's ``--fsdp``): instead of a full copy of the model per rank (DDP),
  PyTorch's FSDP2 ``fully_shard`` splits every parameter, its gradient and its optimizer state
  across the ranks, and gathers a block's weights only while that block runs. Checkpoints are
  gathered (``gathered_state``): one file with whole tensors, the same weights any run writes,
  resumed on any number of ranks.
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dnf
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


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` from every rank in rank order; gradients flow back to each rank's part."""
    if not is_distributed():
        return x
    return torch.cat(dnf.all_gather(x), dim=0)
