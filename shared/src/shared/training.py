"""Training-loop pieces: a ``Trainer`` that takes one optimizer step at a time, and ``fit``.

``Trainer`` owns the model, optimizer, scheduler, GradScaler and step counter: autocast, gradient
accumulation, clipping and loss scaling live here once. ``fit`` drives it for a project: it asks
the project for the micro-batches of each step and for a loss, logs to the run folder, evaluates,
checkpoints and updates the live plot; ``Callback`` hooks let a project act at fixed points (e.g.
unfreeze a backbone at a step) without bending the loop. Every project trains through ``fit`` (the import-graph test keeps
it so): one loop to read, resume and test.

Exact resume: the checkpoint holds model, optimizer, scheduler, scaler, step and RNG states, and
data order should be a pure function of (seed, step or epoch) (see ``shared.batching``), so N steps
+ resume + N steps equals 2N steps straight.

Stopping: Ctrl-C and SIGTERM (``shared.signals``) both save ``last.pt`` and end the loop; the time
budget (``max_minutes``) evaluates and saves, then returns normally.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from shared import signals
from shared.checkpoint import (
    CheckpointManager,
    check_weights_fit,
    refuse_if_damaged,
    refuse_non_finite,
)
from shared.device import autocast, grad_scaler, resolve_precision, rng_state, set_rng_state
from shared.distributed import (
    all_reduce_mean,
    any_rank,
    gathered_state,
    is_distributed,
    is_main,
    is_sharded,
    load_gathered_state,
    shard,
    wrap_ddp,
)
from shared.errors import Terminated, UserError
from shared.optim import check_optimizer_state, check_scheduler_state
from shared.progress import info, progress
from shared.runs import Run

if TYPE_CHECKING:  # only for the annotation: plotting (matplotlib) is the caller's extra
    from shared.plots import LivePlot

LossFn = Callable[[nn.Module, Any], tuple[torch.Tensor, dict[str, torch.Tensor]]]


def maybe_compile(model: nn.Module, enabled: bool) -> nn.Module:
    return torch.compile(model) if enabled else model


class Trainer:
    """One optimizer step at a time. ``model`` is the plain module (its ``state_dict`` is what
    checkpoints hold); ``train_model`` is what the training forward runs through (the model itself,
    or under torchrun its DistributedDataParallel wrapper, compiled with ``--compile``);
    ``eval_model`` is what evaluation runs through (never the DDP wrapper: every rank evaluates the
    same plain module)."""

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
        self.compile = compile
        self.rewrap()
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.precision = resolve_precision(precision, device)
        self.scaler = grad_scaler(device, self.precision)
        self.clip_grad = clip_grad
        self.step = 0
        self.epoch = 0
        self.sharded = is_sharded(self.model)  # --fsdp: state is gathered from every rank

    def rewrap(self) -> None:
        """(Re)build the training wrapper: needed after changing which parameters require
        gradients, because DistributedDataParallel fixes the set it reduces when it is built."""
        self.train_model = maybe_compile(wrap_ddp(self.model, self.device), self.compile)
        self.eval_model = (
            maybe_compile(self.model, self.compile) if is_distributed() else (self.train_model)
        )

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
        model = self.train_model
        for i, batch in enumerate(micro_batches):
            sync = i == n - 1 or not hasattr(model, "no_sync")
            with self.autocast(), contextlib.nullcontext() if sync else model.no_sync():
                loss, metrics = loss_fn(model, batch)
                self.scaler.scale(loss / n).backward()
            for key, value in {"loss": loss, **metrics}.items():
                value = value.detach().float() / n
                totals[key] = totals[key] + value if key in totals else value
        if self.clip_grad:
            self.scaler.unscale_(self.optimizer)
            norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.clip_grad)
            totals["grad_norm"] = (norm.full_tensor() if self.sharded else norm).detach()
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
        """Everything a resume needs. Under FSDP every rank must call it (the shards are gathered
        into whole tensors on rank 0); otherwise it is cheap (references, no copies)."""
        if self.sharded:
            model, optimizer = gathered_state(self.model, self.optimizer)
        else:
            model, optimizer = self.model.state_dict(), self.optimizer.state_dict()
        return {
            "model": model,
            "optimizer": optimizer,
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "scaler": self.scaler.state_dict(),
            "step": self.step,
            "epoch": self.epoch,
            "rng": rng_state(),
        }

    def load_state_dict(self, state: dict[str, Any], *, restore_rng: bool = True) -> None:
        if self.sharded:
            load_gathered_state(self.model, self.optimizer, state["model"], state["optimizer"])
        else:
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
    """Continue a run: restore the trainer, the best metric so far, and drop metric rows past the
    step. The file's model and optimizer state are checked against the trainer's first (a crafted
    ``last.pt`` is one message, never a crash inside an optimizer kernel)."""
    check_weights_fit(trainer.model.state_dict(), state.get("model"), source)
    refuse_non_finite(state["model"], f"{source}: its weights")
    check_optimizer_state(trainer.optimizer, state.get("optimizer"), source)
    check_scheduler_state(trainer.scheduler, state.get("scheduler"), source)
    for key in ("step", "epoch"):
        value = state.get(key, 0)
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**53:
            raise UserError(f"{source}: its {key} {str(value)[:40]!r} is not a count")
    with refuse_if_damaged(source):  # the scheduler's, scaler's and RNG states
        trainer.load_state_dict(state)
    checkpoints.best = state.get("best_metric")
    checkpoints.best_step = state.get("best_step")
    run.truncate_after(trainer.step)
    info(f"resumed from {source} at step {trainer.step}", quiet)


def as_floats(metrics: dict[str, torch.Tensor]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items()}


@dataclass
class Cadence:
    """How long ``fit`` trains and how often it logs, evaluates and saves (in optimizer steps)."""

    max_steps: int
    steps_per_epoch: int | None = None  # counts epochs (and calls ``on_epoch_end``) when set
    eval_every: int = 0  # 0: evaluate only at the end
    log_every: int = 10
    checkpoint_every: int = 0  # without an evaluation: save last.pt every N steps
    max_minutes: float | None = None  # time budget: evaluate, save and stop when it runs out
    patience: int = 0  # early stopping: stop after this many evaluations without a better best.pt

    @classmethod
    def by_epoch(
        cls,
        epochs: int,
        steps_per_epoch: int,
        max_minutes: float | None = None,
        logs: int = 4,
        patience: int = 0,
        min_eval_steps: int = 1,
    ) -> Cadence:
        """Evaluate and save once per epoch, or every few epochs where an epoch is shorter than
        ``min_eval_steps`` steps (a small data set: evaluating and saving every 2 steps would cost
        more than training); log ``logs`` times per evaluation. ``patience``: stop after that many
        epochs without a better validation score (rounded up to whole evaluations)."""
        epochs_per_eval = max(1, math.ceil(min_eval_steps / max(steps_per_epoch, 1)))
        steps_per_eval = steps_per_epoch * epochs_per_eval
        return cls(
            epochs * steps_per_epoch,
            steps_per_epoch=steps_per_epoch,
            eval_every=steps_per_eval,
            log_every=max(1, steps_per_eval // logs),
            checkpoint_every=steps_per_eval,
            max_minutes=max_minutes,
            patience=math.ceil(patience / epochs_per_eval),
        )

    def patience_ran_out(self, step: int, best_step: int | None) -> bool:
        """Whether ``patience`` evaluations have passed since ``best_step`` without a better one."""
        if not self.patience or not self.eval_every or best_step is None:
            return False
        return step - best_step >= self.patience * self.eval_every


def compile_seconds(step_seconds: list[float]) -> float | None:
    """Compile time: how much longer the first step took than the second (the same work, compiled
    once). None when fewer than two steps ran."""
    if len(step_seconds) < 2:
        return None
    return round(max(step_seconds[0] - step_seconds[1], 0.0), 2)


class Callback:
    """Hooks ``fit`` calls; a project overrides the ones it needs."""

    def on_step_start(self, trainer: Trainer) -> None:
        """Before the step that will be number ``trainer.step + 1``."""

    def on_epoch_end(self, trainer: Trainer) -> None:
        """After the last step of an epoch (``trainer.epoch`` already counts it)."""

    def on_evaluate(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        """After each evaluation, with its metrics."""


def fit(
    trainer: Trainer,
    batches: Callable[[int], Sequence[Any]],
    loss_fn: LossFn,
    cadence: Cadence,
    *,
    evaluate: Callable[[Trainer], dict[str, float]] | None = None,
    run: Run | None = None,
    checkpoints: CheckpointManager | None = None,
    extra_state: dict[str, Any] | None = None,
    plot: LivePlot | None = None,
    callbacks: Sequence[Callback] = (),
    quiet: bool = False,
) -> dict[str, Any]:
    """Train until ``trainer.step == cadence.max_steps`` (or the time budget), evaluating and saving.

    ``batches(step)`` returns that step's micro-batches. ``evaluate(trainer)`` returns metrics
    named ``val_*``; the checkpoint manager's ``monitor`` picks the one that decides ``best.pt``.
    ``extra_state`` is stored in every checkpoint beside the trainer's state (the run's config,
    its tokenizer, its split). Ctrl-C and SIGTERM save ``last.pt`` and raise. Returns a summary.
    """
    start_step = trainer.step
    t0 = time.perf_counter()
    deadline = t0 + cadence.max_minutes * 60 if cadence.max_minutes else math.inf
    sums: dict[str, torch.Tensor] = {}
    count = 0
    last_eval: dict[str, float] = {}
    stopped_early = False
    stop_reason = "max_steps"
    step_seconds: list[float] = []  # the first two steps: with --compile, the compile time
    main = is_main()

    def save(metrics: dict[str, float] | None = None) -> None:
        if checkpoints is None or not (main or trainer.sharded):
            return
        state = trainer.state_dict()  # under FSDP every rank takes part in gathering it
        if main:  # a diverged run never replaces the last finite last.pt
            refuse_non_finite(state["model"], f"the weights at step {trainer.step}")
            checkpoints.save({**state, **(extra_state or {})}, metrics)

    def do_eval() -> None:
        nonlocal last_eval
        trainer.model.eval()
        with torch.no_grad():
            last_eval = evaluate(trainer)
        if run is not None:
            run.log(step=trainer.step, epoch=trainer.epoch, **last_eval)
        if plot is not None and main:
            plot.update(trainer.step, **last_eval)
        for cb in callbacks:
            cb.on_evaluate(trainer, last_eval)
        save(last_eval)

    def log_train() -> None:
        nonlocal sums, count
        means = all_reduce_mean({f"train_{k}": v / count for k, v in as_floats(sums).items()})
        sums, count = {}, 0
        bar.set_postfix(loss=f"{means.get('train_loss', float('nan')):.4f}")
        if run is not None:
            run.log(step=trainer.step, epoch=trainer.epoch, lr=trainer.lr, **means)
        if plot is not None and main:
            plot.update(trainer.step, **{k: v for k, v in means.items() if k == "train_loss"})

    steps_per_epoch, eval_every = cadence.steps_per_epoch, cadence.eval_every
    bar = progress(
        total=cadence.max_steps, initial=start_step, quiet=quiet, desc="train", unit="step"
    )
    try:
        with signals.stop_point():
            while trainer.step < cadence.max_steps:
                for cb in callbacks:
                    cb.on_step_start(trainer)
                t_step = time.perf_counter()
                metrics = trainer.train_step([shard(b) for b in batches(trainer.step)], loss_fn)
                if trainer.compile and len(step_seconds) < 2:
                    step_seconds.append(time.perf_counter() - t_step)
                    if len(step_seconds) == 2:
                        info(f"torch.compile: {compile_seconds(step_seconds):.1f} s", quiet)
                for key, value in metrics.items():
                    sums[key] = sums[key] + value if key in sums else value
                count += 1
                bar.update(1)
                if steps_per_epoch and trainer.step % steps_per_epoch == 0:
                    trainer.epoch += 1
                    for cb in callbacks:
                        cb.on_epoch_end(trainer)
                out_of_time, stop = any_rank(time.perf_counter() > deadline, signals.requested())
                if stop:  # SIGTERM: all ranks leave at this step; rank 0 saves
                    save()
                    raise Terminated(f"saved last.pt at step {trainer.step}")
                at_end = trainer.step >= cadence.max_steps or out_of_time
                if (cadence.log_every and trainer.step % cadence.log_every == 0) or at_end:
                    log_train()
                if evaluate is not None and (
                    (eval_every and trainer.step % eval_every == 0) or at_end
                ):
                    do_eval()
                    best_step = checkpoints.best_step if checkpoints is not None else None
                    (patience_out,) = any_rank(  # rank 0 keeps best.pt: all ranks stop with it
                        main and not at_end and cadence.patience_ran_out(trainer.step, best_step)
                    )
                    if patience_out:
                        stop_reason = (
                            f"early stopping: no better {checkpoints.monitor} in "
                            f"{cadence.patience} evaluations since step {best_step}"
                        )
                        info(f"{stop_reason}; stopped at step {trainer.step}", quiet)
                        break
                elif cadence.checkpoint_every and trainer.step % cadence.checkpoint_every == 0:
                    save()
                if out_of_time:
                    stopped_early = trainer.step < cadence.max_steps
                    stop_reason = "time budget" if stopped_early else stop_reason
                    break
            if evaluate is None or not last_eval:
                if evaluate is not None:
                    do_eval()
                else:
                    save()
    except Terminated:
        raise
    except KeyboardInterrupt as exc:
        if trainer.sharded:  # gathering shards needs every rank at the same point
            raise KeyboardInterrupt("stopped; last.pt is the last checkpoint saved") from exc
        save()
        raise KeyboardInterrupt(f"saved last.pt at step {trainer.step}") from exc
    finally:
        bar.close()
        if plot is not None and main:
            plot.draw()
    elapsed = time.perf_counter() - t0
    return {
        "steps": trainer.step,
        "compile_seconds": compile_seconds(step_seconds) if trainer.compile else None,
        "steps_this_run": trainer.step - start_step,
        "train_seconds": round(elapsed, 3),
        "stopped_by_time_budget": stopped_early,
        "stop_reason": stop_reason,
        **last_eval,
    }
