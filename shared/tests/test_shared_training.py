import json

import pytest
import torch
from torch import nn

from shared.checkpoint import CheckpointManager, load_checkpoint
from shared.device import grad_scaler, make_generator, seed_everything
from shared.errors import Terminated
from shared.optim import decay_groups, one_cycle, warmup_cosine
from shared.plots import LivePlot
from shared.runs import Run
from shared.training import Cadence, Callback, Trainer, fit

X = torch.randn(256, 8, generator=torch.Generator().manual_seed(0))
Y = (X[:, 0] > 0).long()


def make_trainer(schedule="cosine", total=20):
    seed_everything(0)
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Dropout(0.3), nn.Linear(32, 2))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    sched = warmup_cosine(opt, 3, total) if schedule == "cosine" else one_cycle(opt, 1e-2, total)
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
        fit(straight, batches, loss_fn, Cadence(20), quiet=True)

        first = make_trainer(schedule)
        mgr = CheckpointManager(tmp_path / schedule, project="t")
        fit(first, batches, loss_fn, Cadence(10), checkpoints=mgr, quiet=True)
        torch.manual_seed(999)  # a new process starts from other RNG states
        resumed = make_trainer(schedule)
        resumed.load_state_dict(load_checkpoint(mgr.last_path, project="t"))
        assert resumed.step == 10
        fit(resumed, batches, loss_fn, Cadence(20), quiet=True)

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

    @torch.no_grad()
    def evaluate(trainer):
        trainer.model.eval()
        logits = trainer.model(X)
        return {
            "val_loss": float(nn.functional.cross_entropy(logits, Y)),
            "val_acc": float((logits.argmax(1) == Y).float().mean()),
        }

    trainer = make_trainer(total=40)
    summary = fit(
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
    from shared import signals

    signals.install()
    mgr = CheckpointManager(tmp_path, project="t")

    def batches_then_stop(step):
        if step == 6:
            signals.request()
        return batches(step)

    with pytest.raises(Terminated, match="step 7"):
        fit(make_trainer(), batches_then_stop, loss_fn, Cadence(20), checkpoints=mgr, quiet=True)
    assert load_checkpoint(mgr.last_path, project="t")["step"] == 7
    signals.install()  # clears the request for the other tests


def test_callbacks_run_at_their_points():
    calls = []

    class Recorder(Callback):
        def on_step_start(self, trainer):
            calls.append(("step", trainer.step))

        def on_epoch_end(self, trainer):
            calls.append(("epoch", trainer.epoch))

        def on_evaluate(self, trainer, metrics):
            calls.append(("eval", trainer.step, metrics["val_x"]))

    fit(
        make_trainer(),
        batches,
        loss_fn,
        Cadence(6, steps_per_epoch=3, eval_every=4),
        evaluate=lambda tr: {"val_x": float(tr.step)},
        callbacks=[Recorder()],
        quiet=True,
    )
    assert calls == [
        ("step", 0),
        ("step", 1),
        ("step", 2),
        ("epoch", 1),
        ("step", 3),
        ("eval", 4, 4.0),
        ("step", 4),
        ("step", 5),
        ("epoch", 2),
        ("eval", 6, 6.0),
    ]


def test_decay_groups_split_matrices_from_vectors():
    model = nn.Sequential(nn.Embedding(5, 4), nn.Linear(4, 4), nn.LayerNorm(4))
    decay, no_decay = decay_groups(model.named_parameters(), 0.1, lr=3.0)
    assert [p.shape for p in decay["params"]] == [(5, 4), (4, 4)] and decay["weight_decay"] == 0.1
    assert [p.shape for p in no_decay["params"]] == [(4,), (4,), (4,)]
    assert no_decay["weight_decay"] == 0.0 and no_decay["lr"] == 3.0


def test_a_diverged_run_never_replaces_a_finite_last_pt(tmp_path):
    """Weights that became NaN (a run that diverged, or tampered optimizer values resumed) are
    refused when saved: the last finite ``last.pt`` stays as it was, and the run ends in one
    message instead of training on to NaN with exit 0."""
    from shared.errors import UserError

    trainer = make_trainer()
    mgr = CheckpointManager(tmp_path / "ckpt", project="t")
    fit(trainer, batches, loss_fn, Cadence(4, checkpoint_every=2), checkpoints=mgr, quiet=True)
    finite = mgr.last_path.read_bytes()

    def poisoned(model, batch):  # a loss whose gradient is NaN: AdamW writes NaN weights
        loss, metrics = loss_fn(model, batch)
        return loss * torch.tensor(float("nan")), metrics

    with pytest.raises(UserError, match=r"weights at step 6 hold NaN or infinite values"):
        fit(trainer, batches, poisoned, Cadence(8, checkpoint_every=2), checkpoints=mgr, quiet=True)
    assert mgr.last_path.read_bytes() == finite
