"""One run lifecycle for every trainer: ``run_training(task, cfg)``.

The order, written once here and nowhere else::

    seed -> device -> resolve --resume -> load it -> check the run's settings are kept
    -> task.plan (data, model, optimizer, batches, loss, evaluation: before the run folder
       exists, so a refusal leaves nothing behind)
    -> Run folder -> Trainer + CheckpointManager -> resume state -> fit
    -> (rank 0 only) reload the chosen checkpoint -> task.summary -> finish the run folder

A project subclasses :class:`TrainingTask` and supplies only what differs: how it trains
(``plan``, handed the resumed checkpoint and its path, returns a :class:`Plan`) and what its
summary holds (``summary``, given an :class:`Outcome` and the plan's ``prepared``: the task keeps
no state of its own between the two, so everything the summary reads is in its arguments).
``cfg`` is a :class:`shared.config.RunConfig` (seed, device, precision, compile, resume, out,
quiet). The smallest complete task is the toy regression in ``shared/tests/test_lifecycle.py``.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from shared.atomic import atomic_path, to_jsonable
from shared.checkpoint import (
    CheckpointManager,
    check_resume_settings,
    load_checkpoint,
    resolve_resume,
    run_of,
)
from shared.device import seed_everything, select_device
from shared.distributed import is_main
from shared.paths import runs_root
from shared.progress import info
from shared.runs import Run, tidy_interrupted
from shared.training import Cadence, Callback, LossFn, Trainer, fit, resume_run


@dataclass
class Plan:
    """How a task trains: its model, optimizer and batches. ``evaluate`` returns ``val_*``
    metrics; ``monitor``/``mode`` pick the one that decides ``best.pt``. ``extra_state`` goes into
    every checkpoint beside the trainer's state and the run's ``config`` (labels, tokenizer,
    split). ``plot`` is a :class:`shared.plots.LivePlot` named by its file name alone, drawn into
    the run's ``figures/``, or None (the lifecycle itself never imports plotting). ``prepared`` is
    the task's own record of what ``plan`` found (its data, splits, tokenizer), handed to
    ``summary`` as an argument."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    batch_for_step: Callable[[int], Sequence[Any]]  # step -> its micro-batches (exact on resume)
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
    prepared: Any = None


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
    """What a project supplies to :func:`run_training`. Override ``plan`` and ``summary``.

    ``checkpoint_keys`` are the keys a resumed checkpoint must hold;
    ``settings_fixed_on_resume`` the config fields a resumed run must not change
    (``why_fixed_on_resume`` says why, in the refusal); ``final_weights`` is ``"best"`` (the
    weights of the best evaluation) or ``"last"`` (the end of the schedule: when what is evaluated
    must not choose anything, as in cross-validation folds).
    """

    project: str = ""
    checkpoint_keys: tuple[str, ...] = ("model", "config")
    settings_fixed_on_resume: tuple[str, ...] = ()
    why_fixed_on_resume: str = ""
    final_weights: Literal["best", "last"] = "best"

    def resumed_config(self, cfg: Any, state: dict[str, Any]) -> Any:
        """The config a resumed run goes on with (e.g. the run's own data when no flag names any)."""
        return cfg

    def plan(
        self,
        cfg: Any,
        device: torch.device,
        resumed: dict[str, Any] | None,
        resume_path: Path | None,
    ) -> Plan:
        """Find and check the data, build the model, say how it trains. Everything that can
        refuse the command happens here, before the run folder exists. ``resumed`` is the
        checkpoint a resumed run continues (read from ``resume_path``), or None."""
        raise NotImplementedError

    def summary(self, cfg: Any, outcome: Outcome, prepared: Any) -> dict[str, Any]:
        """What the run reports (rank 0, after the chosen weights are loaded); ``prepared`` is
        the plan's."""
        return {"steps": outcome.trainer.step, **outcome.result}

    def compile_pays_off(self, cfg: Any, device: torch.device) -> bool:
        """``--compile auto`` away from CUDA: whether this run is long enough to repay compiling."""
        return False


def compile_wanted(task: TrainingTask, cfg: Any, device: torch.device) -> bool:
    """``--compile on|off|auto`` (``RunConfig.compiles``), auto asking the task whether the run is
    long enough to repay compiling away from CUDA."""
    return cfg.compiles(device, cfg.compile == "auto" and task.compile_pays_off(cfg, device))


def run_training(task: TrainingTask, cfg: Any) -> tuple[Run, Any]:
    """Train ``task`` with ``cfg`` into the folder ``--out``/``--resume`` names or a new one,
    and finish it (``summary.json``, the summary printed last). Returns the run folder and the
    summary (``{}`` on ranks other than 0, which report nothing)."""
    run, summary = train_into(task, cfg, None)
    if is_main():
        run.finish(summary)
    return run, summary


def train_into(task: TrainingTask, cfg: Any, run: Run | None) -> tuple[Run, Any]:
    """Train ``task`` into ``run`` (a folder its caller opened and will finish: a
    cross-validation's, which holds its folds), or with None into the folder ``cfg`` names,
    opened after ``plan`` so that a refusal leaves nothing behind and left unfinished. Returns the
    folder and the summary (``{}`` on ranks other than 0)."""
    seed_everything(cfg.seed)
    device = select_device(cfg.device)
    cfg, resumed, resume_path = read_resumed(task, cfg)
    plan = task.plan(cfg, device, resumed, resume_path)
    if run is None:
        run = Run(task.project, cfg.out, cfg, resume_from=resume_path)
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
        plan.batch_for_step,
        plan.loss_fn,
        plan.cadence,
        evaluate=plan.evaluate,
        run=run,
        checkpoints=ckpt,
        extra_state={"config": to_jsonable(cfg), **plan.extra_state},
        plot=plan.plot.placed_in(run.figures) if plan.plot is not None else None,
        callbacks=plan.callbacks,
        quiet=cfg.quiet,
    )
    if not is_main():
        return run, {}
    outcome = load_final_weights(task, trainer, result, ckpt, run, device)
    return run, task.summary(cfg, outcome, plan.prepared)


def read_resumed(task: TrainingTask, cfg: Any) -> tuple[Any, dict[str, Any] | None, Path | None]:
    """``--resume``: the config the run goes on with, the checkpoint it continues and its path
    (``cfg, None, None`` for a new run). Refuses a checkpoint of another project, one missing what
    the task needs, or flags that change a setting the run must keep."""
    resume_path = resolve_resume(cfg.resume, out=cfg.out, runs_root=runs_root(task.project))
    if resume_path is None:
        return cfg, None, None
    tidy_interrupted(run_of(resume_path))  # a killed save's temporaries, even if refused
    resumed = load_checkpoint(
        resume_path, project=task.project, required=task.checkpoint_keys, map_location="cpu"
    )
    cfg = task.resumed_config(cfg, resumed)
    check_resume_settings(
        resume_path, resumed["config"], cfg, task.settings_fixed_on_resume, task.why_fixed_on_resume
    )
    return cfg, resumed, resume_path


def load_final_weights(
    task: TrainingTask,
    trainer: Trainer,
    result: dict[str, Any],
    ckpt: CheckpointManager,
    run: Run,
    device: torch.device,
) -> Outcome:
    """Load the weights the task keeps into the model and describe the finished training:
    ``best.pt``'s (read back from the file, so what is reported is what was saved) when the task
    keeps the best and one exists, else the last step's."""
    for p in trainer.model.parameters():  # a callback may have frozen some
        p.requires_grad_(True)
    step, epoch, path = trainer.step, trainer.epoch, ckpt.last_path
    keeps_best = task.final_weights == "best"
    if keeps_best and not ckpt.best_path.is_file() and ckpt.last_path.is_file():
        # no validation chose a best (too few examples to hold some out): best.pt is the last
        # step's weights, so that the commands that read best.pt work after every run
        with atomic_path(ckpt.best_path) as tmp:
            shutil.copyfile(ckpt.last_path, tmp)
        info("no validation score chose a best model: best.pt holds the last step's weights")
    if keeps_best and ckpt.best_path.is_file():
        path = ckpt.best_path
        best = load_checkpoint(
            path, project=task.project, required=task.checkpoint_keys, map_location=device
        )
        if not trainer.sharded:  # (a sharded model loads on every rank at once, not here)
            trainer.model.load_state_dict(best["model"])
        step, epoch = int(best["step"]), int(best.get("epoch", 0))
    return Outcome(run, trainer, result, ckpt, path, step, epoch, device)
