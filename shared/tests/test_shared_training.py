import json

import pytest
import torch
from torch import nn

from shared.checkpoint import load_checkpoint
from shared.device import grad_scaler, make_generator, seed_everything
from shared.errors import Terminated
from shared.plots import LivePlot
from shared.runs import CheckpointManager, Run
from shared.training import Cadence, Freeze, Trainer, WarmupCosine, run_loop

X = torch.randn(256, 8, generator=torch.Generator().manual_seed(0))
Y = (X[:, 0] > 0).long()


def make_trainer(schedule="cosine", total=20):
    seed_everything(0)
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Dropout(0.3), nn.Linear(32, 2))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    if schedule == "cosine":
        sched = torch.optim.lr_scheduler.LambdaLR(opt, WarmupCosine(3, total))
    else:
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, 1e-2, total_steps=total, pct_start=0.25)
    return Trainer(model, opt, sched, device=torch.device("cpu"), clip_grad=1.0)


def batches(step):
    idx = torch.randperm(256, generator=make_generator(0, step))[:64]
    return [(X[idx[:32]], Y[idx[:32]]), (X[idx[32:]], Y[idx[32:]])]  # 2 micro-batches


def loss_fn(model, batch):
    x, y = batch
    logits = model(x)
    return nn.functional.cross_entropy(logits, y), {"acc": (logits.argmax(1) == y).float().mean()}


def test_resume_is_exact(tmp_path):
    for schedule in ("cosine", "onecycle"):
        straight = make_trainer(schedule)
        run_loop(straight, batches, loss_fn, Cadence(20), quiet=True)

        first = make_trainer(schedule)
        mgr = CheckpointManager(tmp_path / schedule, project="t")
        run_loop(first, batches, loss_fn, Cadence(10), checkpoints=mgr, quiet=True)
        torch.manual_seed(999)  # a new process starts from other RNG states
        resumed = make_trainer(schedule)
        resumed.load_state_dict(load_checkpoint(mgr.last_path, project="t"))
        assert resumed.step == 10
        run_loop(resumed, batches, loss_fn, Cadence(20), quiet=True)

        for a, b in zip(straight.model.parameters(), resumed.model.parameters(), strict=True):
            assert torch.equal(a, b), schedule


def test_fit_learns_logs_evaluates_and_plots_live(tmp_path):
    run = Run("t", tmp_path / "run", config={"lr": 1e-2})
    plot = LivePlot(run.figure("loss.png"), redraw_every=1)
    seen_during_training = []

    def watching_batches(step):
        if step == 15:
            seen_during_training.append(plot.path.is_file())
        return batches(step)

    def evaluate(model):
        logits = model(X)
        return {
            "val_loss": float(nn.functional.cross_entropy(logits, Y)),
            "val_acc": float((logits.argmax(1) == Y).float().mean()),
        }

    trainer = make_trainer(total=40)
    summary = run_loop(
        trainer,
        watching_batches,
        loss_fn,
        Cadence(40, eval_every=10, log_every=5),
        run=run,
        evaluate=evaluate,
        plot=plot,
        quiet=True,
        checkpoints=CheckpointManager(run.checkpoints, project="t"),
        extra_state={"note": "kept"},
    )
    assert seen_during_training == [True]
    assert summary["val_acc"] > 0.9 and summary["steps"] == 40
    lines = (run.path / "metrics.csv").read_text().splitlines()
    assert lines[0].startswith("step,epoch,lr,train_loss")
    assert len(lines) == 1 + 8 + 4  # 8 train rows, 4 eval rows
    assert (run.checkpoints / "best.pt").is_file() and (run.checkpoints / "last.pt").is_file()
    assert load_checkpoint(run.checkpoints / "last.pt", project="t")["note"] == "kept"
    assert json.loads((run.path / "config.json").read_text()) == {"lr": 1e-2}


def test_summary_json_is_the_last_stdout_line(tmp_path, capsys):
    run = Run("t", tmp_path / "r")
    run.finish({"acc": 0.5, "path": tmp_path})
    out = capsys.readouterr().out.splitlines()
    assert str(tmp_path / "r") in out[0]
    assert json.loads(out[-1]) == {"acc": 0.5, "path": str(tmp_path)}
    assert json.loads((tmp_path / "r" / "summary.json").read_text())["acc"] == 0.5


def test_loss_scaling_is_on_for_fp16_only():
    cpu = torch.device("cpu")
    assert grad_scaler(cpu, "fp16").is_enabled()
    assert not grad_scaler(cpu, "bf16").is_enabled() and not grad_scaler(cpu, "fp32").is_enabled()
    # fp16 autocast on a CPU becomes bf16, so the trainer needs no scaler there
    t = Trainer(
        nn.Linear(2, 2), torch.optim.SGD([torch.zeros(1)], lr=0.1), device=cpu, precision="fp16"
    )
    assert t.precision == "bf16" and not t.scaler.is_enabled()
    assert (
        Trainer(
            nn.Linear(2, 2), torch.optim.SGD([torch.zeros(1)], lr=0.1), device=cpu, precision="auto"
        ).precision
        == "fp32"
    )


def test_stop_request_saves_last_and_raises(tmp_path):
    """What SIGTERM does inside the loop (the handler only sets this flag): save, then stop."""
    from shared.cli import handle_sigterm, request_stop

    handle_sigterm()
    mgr = CheckpointManager(tmp_path, project="t")

    def batches_then_stop(step):
        if step == 6:
            request_stop()
        return batches(step)

    with pytest.raises(Terminated, match="step 7"):
        run_loop(
            make_trainer(), batches_then_stop, loss_fn, Cadence(20), checkpoints=mgr, quiet=True
        )
    assert load_checkpoint(mgr.last_path, project="t")["step"] == 7
    handle_sigterm()  # clears the request for the other tests


def test_a_frozen_part_trains_only_from_its_step_on_and_thaws_after():
    """``Freeze``: the parameters it names get no gradient (and no optimizer state) before its
    step, then train; evaluation sees the model as it is, and the loop leaves it all trainable."""
    trainer = make_trainer()
    body = list(trainer.model[0].parameters())
    before = [p.detach().clone() for p in body]
    seen = []

    def evaluate(model):
        seen.append(all(torch.equal(a, b) for a, b in zip(before, body, strict=True)))
        return {"val_x": 0.0}

    freeze = Freeze(lambda: body, until=4)
    run_loop(make_trainer(), batches, loss_fn, Cadence(1), quiet=True)  # (another trainer: warm)
    run_loop(
        trainer, batches, loss_fn, Cadence(6, eval_every=2), evaluate, freeze=freeze, quiet=True
    )
    assert seen == [True, True, False]  # frozen at steps 2 and 4 (from step 4 on it trains)
    assert all(p.requires_grad for p in trainer.model.parameters())


def test_a_diverged_run_never_replaces_a_finite_last_pt(tmp_path):
    """Weights that became NaN (a run that diverged, or tampered optimizer values resumed) are
    refused when saved: the last finite ``last.pt`` stays as it was, and the run ends in one
    message instead of training on to NaN with exit 0."""
    from shared.errors import UserError

    trainer = make_trainer()
    mgr = CheckpointManager(tmp_path / "ckpt", project="t")
    run_loop(trainer, batches, loss_fn, Cadence(4, checkpoint_every=2), checkpoints=mgr, quiet=True)
    finite = mgr.last_path.read_bytes()

    def poisoned(model, batch):  # a loss whose gradient is NaN: AdamW writes NaN weights
        loss, metrics = loss_fn(model, batch)
        return loss * torch.tensor(float("nan")), metrics

    with pytest.raises(UserError, match=r"weights at step 6 hold NaN or infinite values"):
        run_loop(
            trainer, batches, poisoned, Cadence(8, checkpoint_every=2), checkpoints=mgr, quiet=True
        )
    assert mgr.last_path.read_bytes() == finite
