"""The optimizer: AdamW (fused where PyTorch has the kernel), weight-decay groups, and the
checks a saved optimizer (or schedule) state passes before a resume loads it.

Apart from ``shared.training`` so that a model's ``configure_optimizers`` can use it without
loading the training loop (``generate`` and ``predict`` import models, never the loop).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from shared.errors import UserError


def adamw(params, device: torch.device, **kwargs: Any) -> torch.optim.AdamW:
    """AdamW, fused (one kernel for all parameters) where PyTorch has that kernel: CUDA and CPU.

    On CPU it is faster than the default multi-tensor path (measured: intro-nn NOTES.md, "The
    bench").
    """
    return torch.optim.AdamW(params, fused=device.type in ("cuda", "cpu"), **kwargs)


# What each optimizer the projects use keeps per parameter, by name: "step" a count, the others
# tensors of the parameter's shape ("nonneg": a running mean of squares, never below zero).
STATE_ENTRIES: dict[type, dict[str, str]] = {
    torch.optim.AdamW: {"step": "count", "exp_avg": "like", "exp_avg_sq": "nonneg"},
    torch.optim.Adam: {"step": "count", "exp_avg": "like", "exp_avg_sq": "nonneg"},
    torch.optim.SGD: {"momentum_buffer": "like"},
}
AMSGRAD_ENTRY = {"max_exp_avg_sq": "nonneg"}
# hyper-parameters a group's value must lie in: (low, high, high included)
GROUP_BOUNDS = {
    "lr": (0.0, math.inf, False),
    "initial_lr": (0.0, math.inf, False),
    "eps": (0.0, math.inf, False),
    "weight_decay": (0.0, math.inf, False),
    "momentum": (0.0, 1.0, True),
    "betas": (0.0, 1.0, False),
}


def check_optimizer_state(optimizer: torch.optim.Optimizer, saved: Any, path: Any) -> None:
    """Refuse an optimizer state (a checkpoint's, before it is loaded) that ``optimizer`` could not
    run on: PyTorch's fused CPU AdamW trusts the file and reads out of bounds on a wrong
    ``exp_avg`` (a segmentation fault, no message), a mistyped ``lr`` or a missing
    ``exp_avg_sq`` is a traceback inside ``step``, and a NaN trains to NaN silently. Each
    parameter's entries are checked by name (``step`` a finite count; ``exp_avg`` and
    ``exp_avg_sq`` finite floating tensors of the parameter's shape, ``exp_avg_sq`` never
    negative); each group's hyper-parameters have the type of the optimizer's own and lie in
    their range."""
    bad = f"{path}: its optimizer state does not fit the model"
    groups = saved.get("param_groups") if isinstance(saved, dict) else None
    state = saved.get("state") if isinstance(saved, dict) else None
    if not isinstance(groups, list) or not isinstance(state, dict):
        raise UserError(f"{bad} (not an optimizer's state)")
    if len(groups) != len(optimizer.param_groups):
        raise UserError(
            f"{bad} ({len(groups)} parameter groups, not {len(optimizer.param_groups)})"
        )
    params: dict[Any, torch.Tensor] = {}
    for group, ours in zip(groups, optimizer.param_groups, strict=True):
        ids = group.get("params") if isinstance(group, dict) else None
        if not isinstance(ids, list) or len(ids) != len(ours["params"]):
            raise UserError(f"{bad} (a parameter group of another size)")
        check_group_settings(group, ours, bad)
        params |= dict(zip(ids, ours["params"], strict=True))
    wanted = dict(STATE_ENTRIES.get(type(optimizer), {}))
    if any(g.get("amsgrad") for g in optimizer.param_groups):
        wanted |= AMSGRAD_ENTRY
    for key, entry in state.items():
        param = params.get(key)  # ids, or names in a gathered (FSDP) state
        if param is None or not isinstance(entry, dict):
            raise UserError(f"{bad} (state for a parameter it does not have: {key!r})")
        check_entry(entry, param, wanted, bad, type(optimizer).__name__)


def check_entry(
    entry: dict, param: torch.Tensor, wanted: dict[str, str], bad: str, kind: str
) -> None:
    """One parameter's optimizer state: every name ``wanted`` lists present (an optimizer that
    has begun keeps them all), no other, each of its kind."""
    if not wanted:  # an optimizer of no known layout: tensors of the parameter's shape or counts
        wanted = {k: "count" if k == "step" else "like" for k in entry}
    if not entry:
        return
    names = set(map(str, entry))
    if names != set(wanted):
        missing, unknown = sorted(set(wanted) - names), sorted(names - set(wanted))
        what = f"lacks {missing[0]}" if missing else f"holds {unknown[0]!r}, not {kind}'s"
        raise UserError(f"{bad} (a parameter's state {what})")
    for name, rule in wanted.items():
        value = entry[name]
        if rule == "count":
            number = (
                value.item() if isinstance(value, torch.Tensor) and value.numel() == 1 else value
            )
            if not is_real(number) or not 0 <= number < 2**53:
                raise UserError(f"{bad} ({name} {short(number)} is not a step count)")
            continue
        if not isinstance(value, torch.Tensor) or not value.is_floating_point():
            raise UserError(f"{bad} ({name} of a {tuple(param.shape)} parameter is {short(value)})")
        if value.shape != param.shape:
            raise UserError(
                f"{bad} ({name} of a {tuple(param.shape)} parameter is "
                f"{value.dtype} {tuple(value.shape)})"
            )
        if not bool(torch.isfinite(value).all()):
            raise UserError(f"{bad} ({name} holds NaN or infinite values)")
        if rule == "nonneg" and bool((value < 0).any()):
            raise UserError(f"{bad} ({name} holds negative values: it is a mean of squares)")


def check_group_settings(group: dict, ours: dict, bad: str) -> None:
    """A saved parameter group's hyper-parameters: each one the optimizer has, of its type
    (a flag a bool, a number a finite number in its range, a pair a pair)."""
    for name, mine in ours.items():
        if name in ("params", "param_names"):
            continue
        if name not in group:
            raise UserError(f"{bad} (a parameter group lacks {name})")
        value = group[name]
        if isinstance(mine, torch.Tensor) and mine.numel() == 1:
            mine = mine.item()
            value = (
                value.item() if isinstance(value, torch.Tensor) and value.numel() == 1 else value
            )
        if isinstance(mine, bool) or mine is None or isinstance(mine, str):
            ok = value is None if mine is None else type(value) is type(mine)
        elif is_real(mine):
            ok = is_real(value) and in_bounds(name, value)
        elif isinstance(mine, (tuple, list)):
            ok = (
                isinstance(value, (tuple, list))
                and len(value) == len(mine)
                and all(is_real(v) and in_bounds(name, v) for v in value)
            )
        else:
            ok = True  # a value of a kind this check does not know: the optimizer's own business
        if not ok:
            raise UserError(f"{bad} ({name} {short(value)} is not a value {name} can take)")


def check_scheduler_state(scheduler: Any, saved: Any, path: Any) -> None:
    """Refuse a schedule's saved state whose values are not of the kinds the schedule keeps (a
    learning rate of NaN, a step that is text): the run would train on them silently."""
    if scheduler is None or saved is None:
        return
    mine = scheduler.state_dict()
    if (
        not isinstance(saved, dict)
        or set(saved) != set(mine)
        or not all(same_kind(mine[k], saved[k]) for k in mine)
    ):
        raise UserError(f"{path}: its learning-rate schedule's state is not one this run keeps")


def same_kind(mine: Any, value: Any) -> bool:
    """Whether ``value`` is of ``mine``'s kind: a finite number for a number, a list of as many
    such for a list, the same type for anything else."""
    if is_real(mine):
        return is_real(value)
    if isinstance(mine, (list, tuple)):
        return (
            isinstance(value, (list, tuple))
            and len(value) == len(mine)
            and all(same_kind(a, b) for a, b in zip(mine, value, strict=True))
        )
    if isinstance(mine, dict):
        return isinstance(value, dict) and set(value) == set(mine)
    return type(value) is type(mine)


def is_real(value: Any) -> bool:
    """A finite int or float (not a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def in_bounds(name: str, value: float) -> bool:
    low, high, closed = GROUP_BOUNDS.get(name, (-math.inf, math.inf, True))
    return low <= value and (value <= high if closed else value < high)


def short(value: Any) -> str:
    """A value as a message shows it: a tensor by its dtype and shape, anything else cut short."""
    if isinstance(value, torch.Tensor):
        return f"{value.dtype} {tuple(value.shape)}"
    return repr(value)[:40]
