"""Training length that fits the data: early stopping on the monitored validation score (also
across a resume), and a best.pt after every run, even one without a validation split."""

import dataclasses

import torch
import torch.nn.functional as F

from shared.checkpoint import load_checkpoint
from shared.config import RunConfig
from shared.lifecycle import Plan, TrainingTask, run_training
from shared.optim import adamw
from shared.training import Cadence


@dataclasses.dataclass
class ToyConfig(RunConfig):
    steps: int = 200
    patience: int = 3
    validate: bool = True


class PeaksAtForty(TrainingTask):
    """A validation score that is best at step 40 and worse after it."""

    project = "toy"

    def plan(self, cfg, device, resumed, resume_path):
        model = torch.nn.Linear(2, 1)
        x = torch.ones(4, 2)
        return Plan(
            model=model,
            optimizer=adamw(model.parameters(), device, lr=0.01),
            batch_for_step=lambda step: [x],
            loss_fn=lambda m, b: (F.mse_loss(m(b), torch.zeros(4, 1)), {}),
            cadence=Cadence(max_steps=cfg.steps, eval_every=10, patience=cfg.patience),
            evaluate=(lambda tr: {"val_loss": abs(tr.step - 40) / 10}) if cfg.validate else None,
        )

    def summary(self, cfg, outcome, prepared):
        return {**outcome.result, "chosen_step": outcome.chosen_step}


def test_training_stops_after_patience_evaluations_without_a_better_score(tmp_path):
    _, summary = run_training(PeaksAtForty(), ToyConfig(out=tmp_path / "a", quiet=True))
    assert summary["steps"] == 70 and summary["chosen_step"] == 40
    assert summary["stop_reason"].startswith("early stopping: no better val_loss in 3 evaluations")


def test_no_patience_trains_to_the_end(tmp_path):
    _, summary = run_training(PeaksAtForty(), ToyConfig(out=tmp_path / "a", patience=0, quiet=True))
    assert summary["steps"] == 200 and summary["stop_reason"] == "max_steps"


def test_a_resumed_run_remembers_when_its_best_was(tmp_path):
    run_training(PeaksAtForty(), ToyConfig(out=tmp_path / "r", steps=50, quiet=True))
    last = tmp_path / "r" / "checkpoints" / "last.pt"
    assert load_checkpoint(last, project="toy")["best_step"] == 40
    _, resumed = run_training(PeaksAtForty(), ToyConfig(resume=str(last), quiet=True))
    assert resumed["steps"] == 70 and resumed["chosen_step"] == 40


def test_without_validation_best_pt_holds_the_last_weights(tmp_path):
    run, summary = run_training(
        PeaksAtForty(), ToyConfig(out=tmp_path / "n", steps=30, validate=False, quiet=True)
    )
    best = load_checkpoint(run.checkpoints / "best.pt", project="toy")
    last = load_checkpoint(run.checkpoints / "last.pt", project="toy")
    assert best["step"] == last["step"] == 30
    assert torch.equal(best["model"]["weight"], last["model"]["weight"])
