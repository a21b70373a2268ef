import json

import torch
from torch import nn

from shared.checkpoint import CheckpointManager, load_checkpoint
from shared.device import make_generator, seed_everything
from shared.plots import LivePlot
from shared.runs import Run
from shared.schedules import one_cycle, warmup_cosine
from shared.training import Trainer, fit

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
        fit(straight, batches, loss_fn, max_steps=20, quiet=True)

        first = make_trainer(schedule)
        mgr = CheckpointManager(tmp_path / schedule, project="t")
        fit(first, batches, loss_fn, max_steps=10, checkpoints=mgr, quiet=True)
        torch.manual_seed(999)  # a new process starts from other RNG states
        resumed = make_trainer(schedule)
        resumed.load_state_dict(load_checkpoint(mgr.last_path, project="t"))
        assert resumed.step == 10
        fit(resumed, batches, loss_fn, max_steps=20, quiet=True)

        for a, b in zip(straight.model.parameters(), resumed.model.parameters(), strict=True):
            assert torch.equal(a, b), schedule


def test_fit_learns_logs_evaluates_and_plots_live(tmp_path):
    run = Run("t", tmp_path / "run", config={"lr": 1e-2})
    plot = LivePlot(run.figure("loss.png"), every=1)
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
        max_steps=40,
        run=run,
        evaluate=evaluate,
        eval_every=10,
        log_every=5,
        plot=plot,
        quiet=True,
        checkpoints=CheckpointManager(run.checkpoints, project="t"),
    )
    assert seen_during_training == [True]
    assert summary["val_acc"] > 0.9 and summary["steps"] == 40
    lines = (run.path / "metrics.csv").read_text().splitlines()
    assert lines[0].startswith("step,epoch,lr,train_loss")
    assert len(lines) == 1 + 8 + 4  # 8 train rows, 4 eval rows
    assert (run.checkpoints / "best.pt").is_file() and (run.checkpoints / "last.pt").is_file()
    assert json.loads((run.path / "config.json").read_text()) == {"lr": 1e-2}


def test_summary_json_is_the_last_stdout_line(tmp_path, capsys):
    run = Run("t", tmp_path / "r")
    run.finish({"acc": 0.5, "path": tmp_path})
    out = capsys.readouterr().out.splitlines()
    assert str(tmp_path / "r") in out[0]
    assert json.loads(out[-1]) == {"acc": 0.5, "path": str(tmp_path)}
    assert json.loads((tmp_path / "r" / "summary.json").read_text())["acc"] == 0.5


def test_fp16_scaler_only_for_fp16():
    t = Trainer(
        nn.Linear(2, 2),
        torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1),
        device=torch.device("cpu"),
        precision="bf16",
    )
    assert t.precision == "bf16" and not t.scaler.is_enabled()
    t = Trainer(
        nn.Linear(2, 2),
        torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1),
        device=torch.device("cpu"),
        precision="auto",
    )
    assert t.precision == "fp32"
