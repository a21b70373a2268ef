"""``--tensorboard``: the same metrics as metrics.csv, as TensorBoard scalars in the run folder; a
resumed run replaces the events past its step; without the package, one message and no folder."""

import dataclasses
import importlib.util

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from shared.cli import RunConfig
from shared.errors import UserError
from shared.runs import Run


def scalars(folder, tag):
    acc = EventAccumulator(str(folder))
    acc.Reload()
    return [(e.step, round(e.value, 4)) for e in acc.Scalars(tag)]


def test_metrics_go_to_tensorboard_too(tmp_path):
    cfg = RunConfig(tensorboard=True)
    run = Run("demo-project", tmp_path / "run", cfg)
    for step in (10, 20, 30):
        run.log(step=step, epoch=0, train_loss=1.0 / step, lr=0.1)
    run.log(step=30, val_loss=0.5, val_note="text is skipped")
    run.finish({"ok": True})
    board = tmp_path / "run" / "tensorboard"
    assert scalars(board, "train_loss") == [(10, 0.1), (20, 0.05), (30, 0.0333)]
    assert scalars(board, "val_loss") == [(30, 0.5)]
    assert "epoch" not in EventAccumulator(str(board)).Reload().Tags()["scalars"]

    checkpoint = tmp_path / "run" / "checkpoints" / "last.pt"
    resumed = Run("demo-project", tmp_path / "run", cfg, resume_from=checkpoint)
    resumed.truncate_after(20)  # as resume_run does: the steps after 20 are trained again
    resumed.log(step=30, train_loss=0.02)
    resumed.finish({"ok": True})
    assert scalars(board, "train_loss") == [(10, 0.1), (20, 0.05), (30, 0.02)]


def test_off_by_default_and_one_message_without_the_package(tmp_path, monkeypatch):
    Run("demo-project", tmp_path / "plain", RunConfig()).log(step=1, train_loss=1.0)
    assert not (tmp_path / "plain" / "tensorboard").exists()
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "tensorboard" else real(n, *a)
    )
    cfg = dataclasses.replace(RunConfig(), tensorboard=True)
    with pytest.raises(UserError, match="--tensorboard needs tensorboard"):
        Run("demo-project", tmp_path / "never", cfg)
    assert not (tmp_path / "never").exists()
