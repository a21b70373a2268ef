"""The smallest fifth project: a toy regression trained through ``run_training`` (kept < 60 lines:
it is the example ``shared/README.md`` points a newcomer to), then resumed exactly."""

import dataclasses

import torch
import torch.nn.functional as F

from shared.config import RunConfig
from shared.lifecycle import Plan, TrainingTask, run_training
from shared.optim import adamw
from shared.training import Cadence


class Regression(TrainingTask):
    project = "toy"

    def plan(self, cfg, device, resumed, resume_path):
        g = torch.Generator().manual_seed(0)
        x = torch.randn(256, 3, generator=g, device=device)
        y = x @ torch.tensor([1.0, -2.0, 0.5], device=device) + 0.3
        model = torch.nn.Linear(3, 1)

        def evaluate(trainer):
            return {"val_loss": float(F.mse_loss(trainer.eval_model(x).squeeze(1), y))}

        return Plan(
            model=model,
            optimizer=adamw(model.parameters(), device, lr=0.1),
            batch_for_step=lambda step: [(x[step % 8 :: 8], y[step % 8 :: 8])],
            loss_fn=lambda m, b: (F.mse_loss(m(b[0]).squeeze(1), b[1]), {}),
            cadence=Cadence(max_steps=cfg.steps, eval_every=20),
            evaluate=evaluate,
        )

    def summary(self, cfg, outcome, prepared):
        return {"val_loss": outcome.result["val_loss"], "best_step": outcome.chosen_step}


@dataclasses.dataclass
class ToyConfig(RunConfig):
    steps: int = 60


def test_a_toy_regression_trains_through_the_shared_lifecycle(tmp_path):
    run, summary = run_training(Regression(), ToyConfig(out=tmp_path / "a", quiet=True))
    assert summary["val_loss"] < 0.01 and summary["best_step"] == 60
    assert {"best.pt", "last.pt"} <= {p.name for p in run.checkpoints.iterdir()}
    assert "val_loss" in (run.path / "metrics.csv").read_text()


def test_the_toy_resumes_to_the_same_weights_as_a_straight_run(tmp_path):
    _, straight = run_training(Regression(), ToyConfig(out=tmp_path / "s", steps=40, quiet=True))
    run_training(Regression(), ToyConfig(out=tmp_path / "r", steps=20, quiet=True))
    last = tmp_path / "r" / "checkpoints" / "last.pt"
    _, resumed = run_training(Regression(), ToyConfig(steps=40, resume=str(last), quiet=True))
    assert resumed["val_loss"] == straight["val_loss"]


def test_a_log_gets_progress_lines_at_a_steady_interval(tmp_path, capsys, monkeypatch):
    """With stderr not a terminal (a log file, CI, a notebook) no bar is drawn: plain lines come
    at the interval ``$DL_PROGRESS_EVERY`` sets (every update here), each with the step, the loss,
    the time so far and the time left; the interval's default keeps a short run's log quiet."""
    import re

    monkeypatch.setenv("DL_PROGRESS_EVERY", "0")
    run_training(Regression(), ToyConfig(out=tmp_path / "a", steps=20))
    lines = [x for x in capsys.readouterr().err.splitlines() if x.startswith("train: step")]
    assert len(lines) >= 20, lines
    assert re.fullmatch(
        r"train: step 5/20 \(25%\)(, loss [\d.]+)?, \d+ s elapsed, about \d+ s left", lines[4]
    ), lines[4]
    assert lines[-1].startswith("train: step 20/20 (100%)")
    monkeypatch.delenv("DL_PROGRESS_EVERY")
    run_training(Regression(), ToyConfig(out=tmp_path / "b", steps=20))
    assert "train: step" not in capsys.readouterr().err
