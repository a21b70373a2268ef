"""The smallest fifth project: a toy regression whose ``train`` reads top to bottom as a project's
``train.py`` does, calling shared's functions (the example shared/README.md points a newcomer to),
then resumed exactly."""

import dataclasses
import threading

import torch
import torch.nn.functional as F

from shared.checkpoint import read_resume
from shared.cli import RunConfig, arg
from shared.device import seeded_device
from shared.optim import adamw
from shared.runs import Run
from shared.training import Cadence, fit


@dataclasses.dataclass
class ToyConfig(RunConfig):
    steps: int = arg(60, "optimizer steps", low=1)


def train(cfg: ToyConfig) -> dict:
    device = seeded_device(cfg.device, cfg.seed)
    resumed = read_resume(cfg, "toy", ("model", "config")) if cfg.resume else None
    x = torch.randn(256, 3, generator=torch.Generator().manual_seed(0)).to(device)
    y = x @ torch.tensor([1.0, -2.0, 0.5], device=device) + 0.3
    model = torch.nn.Linear(3, 1)
    run = Run("toy", cfg.out, cfg, resume_from=resumed.path if resumed else None)
    fitted = fit(
        model,
        adamw(model.parameters(), device, lr=0.1),
        lambda step: [(x[step % 8 :: 8], y[step % 8 :: 8])],  # the batches of a step
        lambda m, b: (F.mse_loss(m(b[0]).squeeze(1), b[1]), {}),  # the loss of a batch
        Cadence(cfg.steps, eval_every=20),
        run=run,
        device=device,
        evaluate=lambda m: {"val_loss": float(F.mse_loss(m(x).squeeze(1), y))},
        resumed=resumed,
        quiet=cfg.quiet,
    )
    return run.finish({"val_loss": fitted.result["val_loss"], "best_step": fitted.step})


def test_a_toy_regression_trains_with_shared_functions(tmp_path):
    summary = train(ToyConfig(out=tmp_path / "a", quiet=True))
    assert summary["val_loss"] < 0.01 and summary["best_step"] == 60
    run = tmp_path / "a"
    assert {"best.pt", "last.pt"} <= {p.name for p in (run / "checkpoints").iterdir()}
    assert "val_loss" in (run / "metrics.csv").read_text()


def test_the_toy_resumes_to_the_same_weights_as_a_straight_run(tmp_path):
    straight = train(ToyConfig(out=tmp_path / "s", steps=40, quiet=True))
    train(ToyConfig(out=tmp_path / "r", steps=20, quiet=True))
    last = tmp_path / "r" / "checkpoints" / "last.pt"
    resumed = train(ToyConfig(steps=40, resume=str(last), quiet=True))
    assert resumed["val_loss"] == straight["val_loss"]


def test_a_log_gets_progress_lines_at_a_steady_interval(tmp_path, capsys, monkeypatch):
    """With stderr not a terminal (a log file, CI, a notebook) no bar is drawn: plain lines come
    at the interval ``$DL_PROGRESS_EVERY`` sets (every update here), each with the step, the loss,
    the time so far and the time left; the interval's default keeps a short run's log quiet."""
    import re

    monkeypatch.setenv("DL_PROGRESS_EVERY", "0")
    train(ToyConfig(out=tmp_path / "a", steps=20))
    lines = [x for x in capsys.readouterr().err.splitlines() if x.startswith("train: step")]
    assert len(lines) >= 20, lines
    assert re.fullmatch(
        r"train: step 5/20 \(25%\)(, loss [\d.]+)?, \d+ s elapsed, about \d+ s left", lines[4]
    ), lines[4]
    assert lines[-1].startswith("train: step 20/20 (100%)")
    monkeypatch.delenv("DL_PROGRESS_EVERY")
    train(ToyConfig(out=tmp_path / "b", steps=20))
    assert "train: step" not in capsys.readouterr().err


def test_the_time_left_does_not_count_the_first_step_and_a_pause_says_what_it_is(
    monkeypatch, capsys
):
    """A first step that compiled for 100 s would make 8 more 1-second steps look like 4 min 27 s
    left; the estimate starts after it. An evaluation that lasts gets its own lines in a log."""
    from shared import progress as progress_module
    from shared.progress import ProgressLines, busy

    now = iter([0.0, 100.0, 101.0, 102.0])
    monkeypatch.setattr(progress_module.time, "monotonic", lambda: next(now))
    bar = ProgressLines(total=10, desc="train", unit="step", every=1e9)
    for _ in range(3):
        bar.update(1)
    assert bar.line(102.0).endswith("1 min 42 s elapsed, about 7 s left"), bar.line(102.0)
    monkeypatch.undo()

    bar = ProgressLines(total=10, desc="train", unit="step", every=0)
    with busy(bar, "evaluating"):
        while not bar.printed:  # the heartbeat's first line
            threading.Event().wait(0.05)
    assert "train: step 0, evaluating, " in capsys.readouterr().err
