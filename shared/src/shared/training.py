"""The training loop, as a library: ``fit`` trains a model with what its caller gives it and
hands back what came of it. A project's ``train.py`` reads top to bottom: it finds the data,
builds the model and optimizer, opens the run folder and calls ``fit``; nothing here calls back
into a project but the functions it passes (the batches of a step, the loss, the evaluation).

``Trainer`` takes one optimizer step at a time: autocast, gradient accumulation, clipping, loss
scaling, ``torch.compile`` and DDP/FSDP live here once. ``fit`` drives it: logs to the run folder,
evaluates, keeps ``last.pt`` and ``best.pt``, draws the live plot, stops on the time budget,
early stopping, Ctrl-C or SIGTERM (saving ``last.pt`` first), and at the end loads the weights
the caller keeps (``best.pt``'s, or the last step's).

Exact resume: checkpoints hold model, optimizer, scheduler, scaler, step and RNG states, and data
order is a pure function of (seed, step) (``EpochBatches``: each epoch visits the rows in a fresh
order drawn from a generator seeded by (seed, epoch)), so N steps + resume + N steps equals 2N
steps straight.

How long to train when the data set's size is the user's (``AutoLength``: ``--epochs auto`` and
``--patience``): a fixed number of epochs gives a fixed number of passes, but the optimizer steps
it gives shrink with the data (10 epochs of 240 one-second clips are 40 steps, far too few to
learn anything). So ``auto`` sets a step budget (at least ``min_steps`` steps and at least
``min_epochs`` epochs) and stops early once the validation score has not improved for a while.
"""

from __future__ import annotations

import contextlib
import logging
import math
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from shared.checkpoint import (
    check_weights_fit,
    load_checkpoint,
    refuse_if_damaged,
)
from shared.cli import AUTO, stop_point, stop_requested
from shared.device import (
    all_reduce_mean,
    any_rank,
    autocast,
    compiles,
    gathered_state,
    grad_scaler,
    is_distributed,
    is_main,
    is_sharded,
    load_gathered_state,
    make_generator,
    resolve_precision,
    rng_state,
    set_rng_state,
    shard,
    wrap_ddp,
)
from shared.errors import Terminated, UserError
from shared.files import atomic_path, to_jsonable
from shared.optim import check_optimizer_state, check_scheduler_state
from shared.progress import busy, progress
from shared.runs import CheckpointManager, Run, refuse_non_finite

log = logging.getLogger(__name__)

BEST_KEYS = ("best_metric", "best_step")  # a checkpoint's record of the best evaluation so far
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
        self.frozen: bool | None = None  # whether a Freeze holds part of the model now
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


def restore(trainer: Trainer, state: dict[str, Any], source: object) -> None:
    """Continue from a checkpoint's ``state``: its model and optimizer state are checked against
    the trainer's first (a crafted ``last.pt`` is one message, never a crash inside an optimizer
    kernel), then loaded with the schedule, scaler, step and RNG."""
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


def as_floats(metrics: dict[str, torch.Tensor]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items()}


@dataclass
class Cadence:
    """How long ``fit`` trains and how often it logs, evaluates and saves (in optimizer steps)."""

    max_steps: int
    steps_per_epoch: int | None = None  # counts epochs when set
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


@dataclass(frozen=True)
class WarmupCosine:
    """A learning-rate schedule as a factor of each group's rate, stepped once per optimizer step:
    a linear warmup from about 0 to 1 over ``warmup_steps``, then a cosine decay to ``min_ratio``
    at ``total_steps``; ``delay`` steps at the start are spent before the warmup begins (a part of
    the model frozen meanwhile)."""

    warmup_steps: int
    total_steps: int
    min_ratio: float = 0.1
    delay: int = 0

    def __call__(self, step: int) -> float:
        step = max(step - self.delay, 0)
        if self.warmup_steps > 0 and step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        if self.total_steps <= self.warmup_steps:
            return 1.0
        progress = min(
            1.0, (step - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps)
        )
        return self.min_ratio + (1.0 - self.min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


@dataclass
class Plot:
    """The live plot ``fit`` draws into the run's ``figures/``: its file name, its title, the
    metrics with a panel each (all when None), drawn at most every ``redraw_every`` updates."""

    name: str = "loss.png"
    title: str | None = None
    metrics: tuple[str, ...] | None = None
    redraw_every: int = 5


@dataclass
class Freeze:
    """Train only part of the model first: ``parameters`` stop requiring gradients until step
    ``until`` (transfer learning's head-only phase: no backward through them, no optimizer state)."""

    parameters: Callable[[], Any]
    until: int


@dataclass
class Fitted:
    """What a finished ``fit`` hands back (on rank 0; other ranks get the same trainer). The model
    holds the weights kept: ``best.pt``'s when validation chose one, else the last step's."""

    trainer: Trainer
    result: dict[str, Any]  # steps, train_seconds, stop_reason, the last val_* metrics
    checkpoint: Path  # the file holding the weights kept
    step: int  # the step and epoch of those weights
    epoch: int
    best: float | None  # the best value of the monitored metric

    @property
    def model(self) -> nn.Module:
        return self.trainer.model


def fit(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: Callable[[int], Sequence[Any]],
    loss_fn: LossFn,
    cadence: Cadence,
    *,
    run: Run,
    device: torch.device,
    schedule: Any = None,
    evaluate: Callable[[nn.Module], dict[str, float]] | None = None,
    monitor: str = "val_loss",
    mode: Literal["min", "max"] = "min",
    keep: Literal["best", "last"] = "best",
    precision: str = "fp32",
    compile: bool | str = False,
    compile_pays_off: bool = False,
    clip_grad: float | None = None,
    resumed: Any = None,
    extra_state: dict[str, Any] | None = None,
    plot: Plot | None = None,
    freeze: Freeze | None = None,
    quiet: bool = False,
) -> Fitted:
    """Train ``model`` into ``run`` and hand back what came of it. ``batches(step)``: that step's
    micro-batches (accumulated); ``loss_fn(model, batch)``: (loss, metrics); ``evaluate(model)``:
    metrics named ``val_*`` (without gradients, at the run's precision), ``monitor``/``mode``
    picking the one that decides ``best.pt``. ``schedule``: a ``torch.optim.lr_scheduler`` or a
    factor per step (``WarmupCosine``; a list: one per parameter group). ``resumed``: the
    ``shared.checkpoint.Resumed`` to go on from. ``extra_state``: into every checkpoint (the
    run's tokenizer, split, ...). ``keep``: the weights held at the end, ``best`` (the best
    evaluation's; the last step's when nothing was evaluated) or ``last`` (what is evaluated
    chooses nothing: a cross-validation fold). ``compile``: on, off, auto (CUDA, or a CPU where
    the run ``compile_pays_off``) or a bool."""
    if callable(schedule) or isinstance(schedule, list):
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    trainer = Trainer(
        model,
        optimizer,
        schedule,
        device=device,
        precision=precision,
        clip_grad=clip_grad,
        compile=compiles(compile, device, compile_pays_off),
    )
    checkpoints = CheckpointManager(
        run.checkpoints, project=run.project, monitor=monitor, mode=mode
    )
    if resumed is not None:
        restore(trainer, resumed.state, resumed.path)
        checkpoints.best, checkpoints.best_step = (resumed.state.get(k) for k in BEST_KEYS)
        run.truncate_after(trainer.step)  # its metrics past the step: written again
        log.info(f"resumed from {resumed.path} at step {trainer.step}")
    state = {"config": to_jsonable(run.config), **(extra_state or {})}
    live = live_plot(plot, run)
    result = run_loop(
        trainer, batches, loss_fn, cadence, evaluate, run, checkpoints, state, live, freeze, quiet
    )
    return kept_weights(trainer, result, checkpoints, keep)


def live_plot(plot: Plot | None, run: Run):
    """The live plot ``plot`` describes, drawn into ``run``'s figures/ (rank 0 draws; None
    without one)."""
    if plot is None or not is_main():
        return None
    from shared.plots import LivePlot  # the plots extra (matplotlib), only when drawing

    return LivePlot(run.figure(plot.name), plot.redraw_every, plot.title, metrics=plot.metrics)


def kept_weights(
    trainer: Trainer, result: dict[str, Any], ckpt: CheckpointManager, keep: str
) -> Fitted:
    """The model holding the weights ``keep`` names: ``best.pt``'s (read back from the file, so
    what is reported is what was saved) or the last step's. Where no validation chose a best,
    ``best.pt`` is the last step's weights, so that every command reading ``best.pt`` works."""
    step, epoch, path = trainer.step, trainer.epoch, ckpt.last_path
    if keep == "best" and not ckpt.best_path.is_file() and ckpt.last_path.is_file() and is_main():
        with atomic_path(ckpt.best_path) as tmp:
            shutil.copyfile(ckpt.last_path, tmp)
        log.info("no validation score chose a best model: best.pt holds the last step's weights")
    if keep == "best" and ckpt.best_path.is_file():
        path = ckpt.best_path
        best = load_checkpoint(path, project=ckpt.project, map_location=trainer.device)
        if not trainer.sharded:  # (a sharded model loads on every rank at once, not here)
            trainer.model.load_state_dict(best["model"])
        step, epoch = int(best["step"]), int(best.get("epoch", 0))
    return Fitted(trainer, result, path, step, epoch, ckpt.best)


def run_loop(
    trainer: Trainer,
    batches: Callable[[int], Sequence[Any]],
    loss_fn: LossFn,
    cadence: Cadence,
    evaluate: Callable[[nn.Module], dict[str, float]] | None = None,
    run: Run | None = None,
    checkpoints: CheckpointManager | None = None,
    extra_state: dict[str, Any] | None = None,
    plot: Any = None,
    freeze: Freeze | None = None,
    quiet: bool = False,
) -> dict[str, Any]:
    """The loop, kept whole so that it reads in the order a step happens: train until
    ``trainer.step == cadence.max_steps`` (or the time budget, early stopping, a stop signal),
    logging, evaluating and saving. Returns a summary of the training."""
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
        if main:
            checkpoints.save({**state, **(extra_state or {})}, metrics)

    def do_eval() -> None:
        nonlocal last_eval
        trainer.model.eval()
        with torch.no_grad(), trainer.autocast(), busy(bar, "evaluating"):
            last_eval = evaluate(trainer.eval_model)
        if run is not None:
            run.log(step=trainer.step, epoch=trainer.epoch, **last_eval)
        if plot is not None and main:
            plot.update(trainer.step, **last_eval)
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
        with stop_point():
            while trainer.step < cadence.max_steps:
                if freeze is not None:
                    frozen(trainer, freeze)
                t_step = time.perf_counter()
                metrics = trainer.train_step([shard(b) for b in batches(trainer.step)], loss_fn)
                if trainer.compile and len(step_seconds) < 2:
                    step_seconds.append(time.perf_counter() - t_step)
                    if len(step_seconds) == 2:
                        log.info(f"torch.compile: {compile_seconds(step_seconds):.1f} s")
                for key, value in metrics.items():
                    sums[key] = sums[key] + value if key in sums else value
                count += 1
                bar.update(1)
                if steps_per_epoch and trainer.step % steps_per_epoch == 0:
                    trainer.epoch += 1
                out_of_time, stop = any_rank(time.perf_counter() > deadline, stop_requested())
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
                        log.info(f"{stop_reason}; stopped at step {trainer.step}")
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
        if freeze is not None:  # every parameter trainable again, as the model came
            for p in freeze.parameters():
                p.requires_grad_(True)
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


def frozen(trainer: Trainer, freeze: Freeze) -> None:
    """Before each step: ``freeze.parameters`` require gradients from step ``freeze.until`` on;
    the training wrapper is rebuilt at each switch (DistributedDataParallel fixes the set of
    gradients it reduces when it is built)."""
    want = trainer.step < freeze.until
    if trainer.frozen != want:
        for p in freeze.parameters():
            p.requires_grad_(not want)
        trainer.frozen = want
        trainer.rewrap()


# --- data order: a pure function of (seed, step) -----------------------------------------------


@dataclass
class EpochBatches:
    """The batches of a step, a pure function of (seed, step): each epoch visits the ``n_rows``
    rows in a fresh order drawn from a generator seeded by (seed, epoch); step ``s`` takes batch
    ``s % steps_per_epoch`` of epoch ``s // steps_per_epoch`` (an epoch's ragged tail is dropped).
    Called with a step (as ``fit`` calls it), it hands ``make(rows, generator)`` that step's row
    indices (on ``device``) and a generator seeded by (seed, ``stream`` + step) for what the
    batch draws (an augmentation, a caption), and returns the one micro-batch ``make`` builds.
    No state but the cached permutation: a resumed run sees exactly the batches the
    uninterrupted one would have."""

    n_rows: int
    batch_size: int
    seed: int
    device: Any = None
    make: Callable[[torch.Tensor, torch.Generator], Any] | None = None
    stream: int = 1_000_000
    _order: tuple[int, torch.Tensor] | None = field(default=None, init=False, repr=False)

    @property
    def steps_per_epoch(self) -> int:
        if self.n_rows < 1 or self.batch_size < 1:
            raise ValueError("EpochBatches needs at least one row and a positive batch size")
        return max(1, self.n_rows // min(self.batch_size, self.n_rows))

    def indices(self, step: int) -> torch.Tensor:
        epoch, i = divmod(step, self.steps_per_epoch)
        if self._order is None or self._order[0] != epoch:
            perm = torch.randperm(self.n_rows, generator=make_generator(self.seed, epoch))
            self._order = (epoch, perm.to(self.device) if self.device is not None else perm)
        size = min(self.batch_size, self.n_rows)
        return self._order[1][i * size : (i + 1) * size]

    def __call__(self, step: int) -> list[Any]:
        return [self.make(self.indices(step), make_generator(self.seed, self.stream + step))]


# --- how long to train on the user's data: --epochs auto and --patience ------------------------


@dataclass(frozen=True)
class AutoLength:
    """A project's rule for ``--epochs auto`` (see the module docstring)."""

    min_epochs: int
    min_steps: int
    patience_epochs: int
    patience_steps: int
    min_steps_between_evals: int = 20  # a small data set's epochs are a step or two

    def min_eval_steps(self, setting: int | str) -> int:
        """Steps between validations at least: ``auto`` spaces them (hundreds of one-step epochs
        would validate after every step); ``--epochs N`` validates after every epoch."""
        return self.min_steps_between_evals if setting == AUTO else 1

    def epochs(self, setting: int | str, steps_per_epoch: int) -> int:
        if setting != AUTO:
            return int(setting)
        return max(self.min_epochs, math.ceil(self.min_steps / max(steps_per_epoch, 1)))

    def patience(self, setting: int | None, epochs: int | str, steps_per_epoch: int) -> int:
        """Epochs without a better validation score before stopping (0: never stop early)."""
        if setting is not None:
            return int(setting)
        if epochs != AUTO:
            return 0
        return max(self.patience_epochs, math.ceil(self.patience_steps / max(steps_per_epoch, 1)))

    def describe(self, epochs: int, patience: int, steps_per_epoch: int) -> str:
        stop = f"; stops early after {patience} epochs without improvement" if patience else ""
        return (
            f"{epochs} epochs of {steps_per_epoch} steps ({epochs * steps_per_epoch} steps){stop}"
        )

    def cadence(
        self,
        setting: int | str,
        patience: int | None,
        batches: EpochBatches,
        *,
        validates: bool,
        epochs: int | None = None,
        max_minutes: float | None = None,
        quiet: bool = False,
    ) -> tuple[int, Cadence]:
        """The whole step from the flags to the schedule: ``--epochs`` (``setting``; ``epochs``
        where the count was resolved elsewhere, as a cross-validation's final model's) and
        ``--patience`` for this data, said in one line; no early stopping when nothing
        ``validates``. Returns the epochs and the :meth:`Cadence.by_epoch` that runs them (over
        ``batches``' epochs)."""
        steps_per_epoch = batches.steps_per_epoch
        count = self.epochs(setting if epochs is None else epochs, steps_per_epoch)
        wait = self.patience(patience, setting, steps_per_epoch) if validates else 0
        log.info(f"training length: {self.describe(count, wait, steps_per_epoch)}")
        return count, Cadence.by_epoch(
            count,
            steps_per_epoch,
            max_minutes,
            patience=wait,
            min_eval_steps=self.min_eval_steps(setting),
        )
