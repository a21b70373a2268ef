"""Training-loop pieces: a ``Trainer`` that takes one optimizer step at a time, and ``fit``.

``Trainer`` owns the model, optimizer, scheduler, GradScaler and step counter: autocast, gradient
accumulation, clipping and loss scaling live here once. ``fit`` drives it for a project: it asks
the project for the micro-batches of each step and for a loss, logs to the run folder, evaluates,
checkpoints and updates the live plot. Projects stay free to write their own loop.

Exact resume: the checkpoint holds model, optimizer, scheduler, scaler, step and RNG states, and
data order should be a pure function of (seed, step or epoch) (see ``shared.device.make_generator``),
so N steps + resume + N steps equals 2N steps straight.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from shared.checkpoint import CheckpointManager
from shared.device import rng_state, set_rng_state
from shared.distributed import all_reduce_mean, any_rank, is_distributed, is_main, shard, wrap_ddp
from shared.plots import LivePlot
from shared.precision import autocast, grad_scaler, resolve_precision
from shared.progress import progress
from shared.runs import Run

LossFn = Callable[[nn.Module, Any], tuple[torch.Tensor, dict[str, torch.Tensor]]]


def adamw(params, device: torch.device, **kwargs: Any) -> torch.optim.AdamW:
    """AdamW, fused (one kernel for all parameters) where PyTorch has that kernel: CUDA and CPU.

    On CPU it made an MNIST MLP epoch 1.4x faster than the default multi-tensor path.
    """
    return torch.optim.AdamW(params, fused=device.type in ("cuda", "cpu"), **kwargs)


def maybe_compile(model: nn.Module, enabled: bool) -> nn.Module:
    return torch.compile(model) if enabled else model


class Trainer:
    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: Any = None,
        *,
        device: torch.device,
        precision: str = "fp32",
        clip_grad: float | None = None,
        compile: bool = False,
    ) -> None:
        self.device = device
        self.model = model.to(device)
        # Under torchrun the training forward is DistributedDataParallel (gradients averaged across
        # ranks); evaluation uses the plain module, identical on every rank.
        self.forward = maybe_compile(wrap_ddp(self.model, device), compile)
        self.eval_forward = self.model if is_distributed() else self.forward
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.precision = resolve_precision(precision, device)
        self.scaler = grad_scaler(device, self.precision)
        self.clip_grad = clip_grad
        self.step = 0
        self.epoch = 0

    def autocast(self):
        return autocast(self.device, self.precision)

    def train_step(self, micro_batches: Sequence[Any], loss_fn: LossFn) -> dict[str, torch.Tensor]:
        """One optimizer step over ``micro_batches`` (gradient accumulation when there are several).

        Returns the step's metrics as detached tensors (averaged over micro-batches) without a
        device sync; call ``.item()`` only when logging.
        """
        self.model.train()
        n = len(micro_batches)
        totals: dict[str, torch.Tensor] = {}
        for i, batch in enumerate(micro_batches):
            sync = i == n - 1 or not hasattr(self.forward, "no_sync")
            with self.autocast(), contextlib.nullcontext() if sync else self.forward.no_sync():
                loss, metrics = loss_fn(self.forward, batch)
                self.scaler.scale(loss / n).backward()
            for key, value in {"loss": loss, **metrics}.items():
                value = value.detach().float() / n
                totals[key] = totals[key] + value if key in totals else value
        if self.clip_grad:
            self.scaler.unscale_(self.optimizer)
            totals["grad_norm"] = torch.nn.utils.clip_grad_norm_(
                self.model.parameters(), self.clip_grad
            ).detach()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        if self.scheduler is not None:
            self.scheduler.step()
        self.step += 1
        return totals

    @property
    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "scaler": self.scaler.state_dict(),
            "step": self.step,
            "epoch": self.epoch,
            "rng": rng_state(),
        }

    def load_state_dict(self, state: dict[str, Any], *, restore_rng: bool = True) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state.get("scheduler") is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.step = int(state["step"])
        self.epoch = int(state.get("epoch", 0))
        if restore_rng and "rng" in state:
            set_rng_state(state["rng"])


def resume_run(
    trainer: Trainer,
    state: dict[str, Any],
    checkpoints: CheckpointManager,
    run: Run,
    source: object = "checkpoint",
    quiet: bool = False,
) -> None:
    """Continue a run: restore the trainer, the best metric so far, and drop metric rows past the step."""
    from shared.progress import info

    trainer.load_state_dict(state)
    checkpoints.best = state.get("best_metric")
    run.metrics.truncate_after("step", trainer.step)
    info(f"resumed from {source} at step {trainer.step}", quiet)


def _items(metrics: dict[str, torch.Tensor]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items()}


def fit(
    trainer: Trainer,
    batches: Callable[[int], Sequence[Any]],
    loss_fn: LossFn,
    *,
    max_steps: int,
    run: Run | None = None,
    evaluate: Callable[[Trainer], dict[str, float]] | None = None,
    eval_every: int = 0,
    log_every: int = 10,
    checkpoints: CheckpointManager | None = None,
    checkpoint_every: int = 0,
    checkpoint_extra: Callable[[], dict[str, Any]] | None = None,
    monitor: str = "val_loss",
    plot: LivePlot | None = None,
    max_minutes: float | None = None,
    quiet: bool = False,
    steps_per_epoch: int | None = None,
) -> dict[str, Any]:
    """Train until ``trainer.step == max_steps`` (or the time budget), evaluating and saving.

    ``batches(step)`` returns that step's micro-batches. ``evaluate(trainer)`` returns metrics
    named ``val_*``; ``monitor`` picks the one that decides ``best.pt`` (lower is better unless the
    manager's mode is ``max``). Ctrl-C saves ``last.pt`` before re-raising. Returns a summary.
    """
    start_step = trainer.step
    t0 = time.perf_counter()
    deadline = t0 + max_minutes * 60 if max_minutes else math.inf
    sums: dict[str, torch.Tensor] = {}
    count = 0
    last_eval: dict[str, float] = {}
    stopped_early = False

    def save(metric: float | None = None) -> None:
        if checkpoints is not None and is_main():
            extra = checkpoint_extra() if checkpoint_extra else {}
            checkpoints.save({**trainer.state_dict(), **extra}, metric=metric)

    def do_eval() -> None:
        nonlocal last_eval
        last_eval = evaluate(trainer)
        row = {"step": trainer.step, "epoch": trainer.epoch, **last_eval}
        if run is not None:
            run.log(**row)
        if plot is not None and is_main():
            plot.update(trainer.step, **last_eval)
        save(last_eval.get(monitor))

    bar = progress(total=max_steps, initial=start_step, quiet=quiet, desc="train", unit="step")
    try:
        while trainer.step < max_steps:
            metrics = trainer.train_step([shard(b) for b in batches(trainer.step)], loss_fn)
            for key, value in metrics.items():
                sums[key] = sums[key] + value if key in sums else value
            count += 1
            if steps_per_epoch and trainer.step % steps_per_epoch == 0:
                trainer.epoch += 1
            bar.update(1)
            out_of_time = (
                any_rank(time.perf_counter() > deadline) if deadline != math.inf else False
            )
            at_end = trainer.step >= max_steps or out_of_time
            if (log_every and trainer.step % log_every == 0) or at_end:
                means = all_reduce_mean({f"train_{k}": v / count for k, v in _items(sums).items()})
                sums, count = {}, 0
                bar.set_postfix(loss=f"{means.get('train_loss', float('nan')):.4f}")
                if run is not None:
                    run.log(step=trainer.step, epoch=trainer.epoch, lr=trainer.lr, **means)
                if plot is not None:
                    plot.update(
                        trainer.step, **{k: v for k, v in means.items() if k == "train_loss"}
                    )
            if evaluate is not None and ((eval_every and trainer.step % eval_every == 0) or at_end):
                do_eval()
            elif checkpoint_every and trainer.step % checkpoint_every == 0:
                save()
            if out_of_time:
                stopped_early = trainer.step < max_steps
                break
        if evaluate is None or not last_eval:
            if evaluate is not None:
                do_eval()
            else:
                save()
    except KeyboardInterrupt:
        save()
        raise
    finally:
        bar.close()
        if plot is not None and is_main():
            plot.draw()
    elapsed = time.perf_counter() - t0
    return {
        "steps": trainer.step,
        "steps_this_run": trainer.step - start_step,
        "train_seconds": round(elapsed, 3),
        "stopped_by_time_budget": stopped_early,
        **last_eval,
    }
