"""Training length that fits the data: early stopping on the monitored validation score (also
across a resume), and a best.pt after every run, even one without a validation split."""

import dataclasses

import torch
import torch.nn.functional as F

from shared.checkpoint import load_checkpoint, read_resume
from shared.cli import RunConfig
from shared.optim import adamw
from shared.runs import Run
from shared.training import Cadence, fit


@dataclasses.dataclass
class ToyConfig(RunConfig):
    steps: int = 200
    patience: int = 3
    validate: bool = True


def peaks_at_forty(cfg: ToyConfig) -> dict:
    """A validation score that is best at step 40 and worse after it (evaluated every 10 steps)."""
    device = torch.device("cpu")
    resumed = read_resume(cfg, "toy", ("model",)) if cfg.resume else None
    model = torch.nn.Linear(2, 1)
    x = torch.ones(4, 2)
    run = Run("toy", cfg.out, cfg, resume_from=resumed.path if resumed else None)
    evaluations = [resumed.state["step"] // 10 if resumed else 0]

    def evaluate(m):
        evaluations[0] += 1
        return {"val_loss": abs(10 * evaluations[0] - 40) / 10}

    fitted = fit(
        model,
        adamw(model.parameters(), device, lr=0.01),
        lambda step: [x],
        lambda m, b: (F.mse_loss(m(b), torch.zeros(4, 1)), {}),
        Cadence(max_steps=cfg.steps, eval_every=10, patience=cfg.patience),
        run=run,
        device=device,
        evaluate=evaluate if cfg.validate else None,
        resumed=resumed,
        quiet=True,
    )
    return run.finish({**fitted.result, "chosen_step": fitted.step})


def test_training_stops_after_patience_evaluations_without_a_better_score(tmp_path):
    summary = peaks_at_forty(ToyConfig(out=tmp_path / "a", quiet=True))
    assert summary["steps"] == 70 and summary["chosen_step"] == 40
    assert summary["stop_reason"].startswith("early stopping: no better val_loss in 3 evaluations")


def test_no_patience_trains_to_the_end(tmp_path):
    summary = peaks_at_forty(ToyConfig(out=tmp_path / "a", patience=0, quiet=True))
    assert summary["steps"] == 200 and summary["stop_reason"] == "max_steps"


def test_a_resumed_run_remembers_when_its_best_was(tmp_path):
    peaks_at_forty(ToyConfig(out=tmp_path / "r", steps=50, quiet=True))
    last = tmp_path / "r" / "checkpoints" / "last.pt"
    assert load_checkpoint(last, project="toy")["best_step"] == 40
    resumed = peaks_at_forty(ToyConfig(resume=str(last), quiet=True))
    assert resumed["steps"] == 70 and resumed["chosen_step"] == 40


def test_without_validation_best_pt_holds_the_last_weights(tmp_path):
    peaks_at_forty(ToyConfig(out=tmp_path / "n", steps=30, validate=False, quiet=True))
    run = tmp_path / "n" / "checkpoints"
    best = load_checkpoint(run / "best.pt", project="toy")
    last = load_checkpoint(run / "last.pt", project="toy")
    assert best["step"] == last["step"] == 30
    assert torch.equal(best["model"]["weight"], last["model"]["weight"])
