"""One run lifecycle for every trainer: ``run_training(task, cfg)``.

The order, written once here and nowhere else::

    seed -> device -> resolve --resume -> load it -> check the run's settings are kept
    -> task.prepare (data, model: before the run folder, so a refusal leaves nothing behind)
    -> Run folder -> task.plan (optimizer, batches, loss, evaluation, what checkpoints hold)
    -> Trainer + CheckpointManager -> resume state -> fit
    -> (rank 0 only) reload the chosen checkpoint -> task.summary

A project subclasses :class:`TrainingTask` and supplies only what differs: its data and model
(``prepare``), how it trains (``plan`` returns a :class:`Plan`) and what its summary holds
(``summary``, given an :class:`Outcome`). ``cfg`` is a :class:`shared.config.RunConfig` (seed,
device, precision, compile, resume, out, quiet). The smallest complete task is the toy regression
in ``shared/tests/test_lifecycle.py``.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from shared.atomic import atomic_path
from shared.checkpoint import (
    CheckpointManager,
    check_resume_settings,
    load_checkpoint,
    resolve_resume,
    run_of,
)
from shared.device import seed_everything, select_device
from shared.distributed import is_main
from shared.jsonable import to_jsonable
from shared.paths import runs_root
from shared.progress import info
from shared.runs import Run, tidy_interrupted
from shared.training import Cadence, Callback, LossFn, Trainer, fit, resume_run


@dataclass
class Plan:
    """How a task trains, once its data and model exist. ``evaluate`` returns ``val_*`` metrics;
    ``monitor``/``mode`` pick the one that decides ``best.pt``. ``extra_state`` goes into every
    checkpoint beside the trainer's state and the run's ``config`` (labels, tokenizer, split). ``plot``
    is a :class:`shared.plots.LivePlot` or None (the lifecycle itself never imports plotting)."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    batches: Callable[[int], Sequence[Any]]
    loss_fn: LossFn
    cadence: Cadence
    scheduler: Any = None
    evaluate: Callable[[Trainer], dict[str, float]] | None = None
    extra_state: dict[str, Any] = field(default_factory=dict)
    plot: Any = None
    callbacks: Sequence[Callback] = ()
    clip_grad: float | None = None
    monitor: str = "val_loss"
    mode: Literal["min", "max"] = "min"


@dataclass
class Outcome:
    """What a finished training hands to ``task.summary`` (on rank 0). ``model`` holds the chosen
    weights: ``best.pt``'s when the task keeps the best and one was written, else the last."""

    run: Run
    trainer: Trainer
    result: dict[str, Any]  # fit's summary: steps, train_seconds, the last val_* metrics
    checkpoints: CheckpointManager
    checkpoint: Path  # the file holding the chosen weights
    chosen_step: int
    chosen_epoch: int
    device: torch.device

    @property
    def model(self) -> nn.Module:
        return self.trainer.model


class TrainingTask:
    """What a project supplies to :func:`run_training`. Override ``prepare``, ``plan``, ``summary``.

    ``checkpoint_keys`` are the keys a resumed checkpoint must hold; ``resume_keeps`` the config
    fields a resumed run must not change (``resume_why`` says why, in the refusal); ``keep`` is
    ``"best"`` (the weights of the best evaluation) or ``"last"`` (the end of the schedule: when
    what is evaluated must not choose anything, as in cross-validation folds).
    """

    project: str = ""
    checkpoint_keys: tuple[str, ...] = ("model", "config")
    resume_keeps: tuple[str, ...] = ()
    resume_why: str = ""
    keep: Literal["best", "last"] = "best"
    resume_path: Path | None = None  # set by run_training: the checkpoint a resumed run continues

    def resumed_config(self, cfg: Any, state: dict[str, Any]) -> Any:
        """The config a resumed run goes on with (e.g. the run's own data when no flag names any)."""
        return cfg

    def prepare(self, cfg: Any, device: torch.device, resumed: dict[str, Any] | None) -> None:
        """Find and check the data, build the model: everything that can refuse the command."""

    def plan(self, cfg: Any, run: Run, device: torch.device) -> Plan:
        raise NotImplementedError

    def summary(self, cfg: Any, outcome: Outcome) -> dict[str, Any]:
        return {"steps": outcome.trainer.step, **outcome.result}

    def compile_pays_off(self, cfg: Any, device: torch.device) -> bool:
        """``--compile auto`` away from CUDA: whether this run is long enough to repay compiling."""
        return False


def compile_wanted(task: TrainingTask, cfg: Any, device: torch.device) -> bool:
    """``--compile``/``--no-compile`` (a bool), or ``on``/``off``/``auto``: auto compiles on CUDA
    always, elsewhere where the task says the run repays it."""
    setting = cfg.compile
    if isinstance(setting, bool):
        return setting
    if setting == "auto":
        return device.type == "cuda" or task.compile_pays_off(cfg, device)
    return setting == "on"


def run_training(task: TrainingTask, cfg: Any, *, run: Run | None = None) -> tuple[Run, Any]:
    """Train ``task`` with ``cfg``; returns the run folder and the summary (``{}`` on ranks other
    than 0, which report nothing). ``run``: train into this folder (a cross-validation fold's)
    instead of the one ``--out``/``--resume`` names or a new one. The caller finishes the run
    (``run.finish(summary)``) so it can add to the summary first."""
    seed_everything(cfg.seed)
    device = select_device(cfg.device)
    resume_path = resolve_resume(cfg.resume, out=cfg.out, runs_root=runs_root(task.project))
    resumed, task.resume_path = None, resume_path
    if resume_path is not None:
        tidy_interrupted(run_of(resume_path))  # a killed save's temporaries, even if refused
        resumed = load_checkpoint(
            resume_path, project=task.project, required=task.checkpoint_keys, map_location="cpu"
        )
        cfg = task.resumed_config(cfg, resumed)
        check_resume_settings(
            resume_path, resumed["config"], cfg, task.resume_keeps, task.resume_why
        )
    task.prepare(cfg, device, resumed)
    if run is None:
        run = Run(task.project, cfg.out, cfg, resume_from=resume_path)
    plan = task.plan(cfg, run, device)
    trainer = Trainer(
        plan.model,
        plan.optimizer,
        plan.scheduler,
        device=device,
        precision=cfg.precision,
        clip_grad=plan.clip_grad,
        compile=compile_wanted(task, cfg, device),
    )
    ckpt = CheckpointManager(
        run.checkpoints, project=task.project, monitor=plan.monitor, mode=plan.mode
    )
    if resumed is not None:
        resume_run(trainer, resumed, ckpt, run, resume_path, cfg.quiet)
    result = fit(
        trainer,
        plan.batches,
        plan.loss_fn,
        plan.cadence,
        evaluate=plan.evaluate,
        run=run,
        checkpoints=ckpt,
        extra_state={"config": to_jsonable(cfg), **plan.extra_state},
        plot=plan.plot,
        callbacks=plan.callbacks,
        quiet=cfg.quiet,
    )
    if not is_main():
        return run, {}
    return run, task.summary(cfg, chosen(task, trainer, result, ckpt, run, device))


def chosen(
    task: TrainingTask,
    trainer: Trainer,
    result: dict[str, Any],
    ckpt: CheckpointManager,
    run: Run,
    device: torch.device,
) -> Outcome:
    """Put the chosen weights into the model: ``best.pt``'s (read back from the file, so what is
    reported is what was saved) when the task keeps the best and one exists, else the last."""
    for p in trainer.model.parameters():  # a callback may have frozen some
        p.requires_grad_(True)
    step, epoch, path = trainer.step, trainer.epoch, ckpt.last_path
    if task.keep == "best" and not ckpt.best_path.is_file() and ckpt.last_path.is_file():
        # no validation chose a best (too few examples to hold some out): best.pt is the last
        # step's weights, so that the commands that read best.pt work after every run
        with atomic_path(ckpt.best_path) as tmp:
            shutil.copyfile(ckpt.last_path, tmp)
        info("no validation score chose a best model: best.pt holds the last step's weights")
    if task.keep == "best" and ckpt.best_path.is_file():
        path = ckpt.best_path
        best = load_checkpoint(
            path, project=task.project, required=task.checkpoint_keys, map_location=device
        )
        trainer.model.load_state_dict(best["model"])
        step, epoch = int(best["step"]), int(best.get("epoch", 0))
    return Outcome(run, trainer, result, ckpt, path, step, epoch, device)
