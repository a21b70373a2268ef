import os
import re

import pytest
import torch

from shared.checkpoint import load_checkpoint, resolve_resume
from shared.errors import UserError
from shared.runs import CheckpointManager, save_checkpoint


def test_save_and_load(tmp_path):
    path = save_checkpoint(tmp_path / "c.pt", {"w": torch.arange(3)}, project="a")
    data = load_checkpoint(path, project="a")
    assert torch.equal(data["w"], torch.arange(3))


def test_checkpoint_of_another_project_is_refused(tmp_path):
    path = save_checkpoint(tmp_path / "c.pt", {"w": torch.zeros(1)}, project="audio-net")
    with pytest.raises(UserError, match="'audio-net', not 'austen-net'"):
        load_checkpoint(path, project="austen-net")


def test_garbage_file_is_a_user_error(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint at all")
    with pytest.raises(UserError, match="not a readable"):
        load_checkpoint(bad, project="a")


def test_interrupted_save_keeps_previous_checkpoint(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "last.pt", {"v": torch.tensor(1)}, project="a")
    real_save = torch.save

    def dying_save(obj, f, *args, **kwargs):
        with open(f, "wb") as fh:
            fh.write(b"half a checkpoint")  # some bytes reach the disk, then the process dies
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, {"v": torch.tensor(2)}, project="a")
    monkeypatch.setattr(torch, "save", real_save)
    assert load_checkpoint(path, project="a")["v"].item() == 1
    assert os.listdir(tmp_path) == ["last.pt"]  # no temporary file left behind


def test_manager_keeps_last_and_best(tmp_path):
    mgr = CheckpointManager(tmp_path, project="a", monitor="val_loss", mode="min")
    assert mgr.save({"v": 1}, {"val_loss": 2.0})
    assert not mgr.save({"v": 2}, {"val_loss": 3.0})
    assert mgr.save({"v": 3}, {"val_loss": 1.0, "val_acc": 0.1})
    assert not mgr.save({"v": 4}, {"val_loss": float("nan")})  # NaN never becomes the best
    mgr.save({"v": 5})
    assert load_checkpoint(mgr.best_path, project="a", required=("v",))["v"] == 3
    assert load_checkpoint(mgr.last_path, project="a", required=("v",))["v"] == 5
    high = CheckpointManager(tmp_path / "h", project="a", monitor="val_acc", mode="max")
    assert high.save({}, {"val_acc": 0.5}) and not high.save({}, {"val_acc": 0.4})


def test_missing_keys_and_unknown_format_are_user_errors(tmp_path):
    path = save_checkpoint(tmp_path / "c.pt", {"model": {}}, project="a")
    with pytest.raises(UserError, match="lacks genres, split"):
        load_checkpoint(path, project="a", required=("model", "genres", "split"))
    data = torch.load(path, weights_only=True)
    torch.save({**data, "format_version": 99}, path)
    with pytest.raises(UserError, match="format 99"):
        load_checkpoint(path, project="a")


def test_stale_temporaries_of_a_killed_save_are_removed(tmp_path):
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    for name in (".last.pt.abc123.tmp", ".best.pt.x.tmp", ".other.pt.y.tmp", "keep.txt"):
        (folder / name).write_bytes(b"half")
    CheckpointManager(folder, project="a")
    assert sorted(p.name for p in folder.iterdir()) == [".other.pt.y.tmp", "keep.txt"]


def test_resolve_resume_latest(tmp_path):
    root = tmp_path / "runs"
    with pytest.raises(UserError, match="no checkpoints"):
        resolve_resume("latest", out=None, runs_root=root)
    for name in ("old", "new"):
        save_checkpoint(root / name / "checkpoints" / "last.pt", {}, project="a")
    os.utime(root / "old" / "checkpoints" / "last.pt", (1, 1))
    assert resolve_resume("latest", out=None, runs_root=root).parts[-3] == "new"
    assert resolve_resume(str(root / "old"), out=None, runs_root=root).parts[-3] == "old"
    assert resolve_resume(None, out=None, runs_root=root) is None
    with pytest.raises(UserError):
        resolve_resume(str(tmp_path / "nope.pt"), out=None, runs_root=root)


def test_an_optimizer_state_that_does_not_fit_is_refused_before_loading():
    from shared.optim import adamw, check_optimizer_state

    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    opt = adamw(model.parameters(), lr=0.1, device=torch.device("cpu"))
    model(torch.randn(5, 4)).sum().backward()
    opt.step()
    good = opt.state_dict()
    check_optimizer_state(opt, good, "last.pt")  # its own state fits

    def tampered(change):
        state = {
            "state": {k: {n: t.clone() for n, t in v.items()} for k, v in good["state"].items()},
            "param_groups": [dict(g, params=list(g["params"])) for g in good["param_groups"]],
        }
        change(state)
        return state

    cases = [
        (lambda s: s["state"][0].update(exp_avg=torch.zeros(3)), "exp_avg of a (3, 4) parameter"),
        (lambda s: s["state"][1].update(exp_avg_sq=torch.zeros(3, dtype=torch.int32)), "int32"),
        (lambda s: s["state"].update({99: {"exp_avg": torch.zeros(1)}}), "does not have: 99"),
        (lambda s: s["param_groups"][0]["params"].pop(), "a parameter group of another size"),
        (lambda s: s["param_groups"].append({"params": []}), "2 parameter groups, not 1"),
        (lambda s: s.pop("state"), "not an optimizer's state"),
        # by name: a one-element tensor is no longer taken for a step count whatever its name
        (lambda s: s["state"][0].update(exp_avg=torch.zeros(1)), "exp_avg of a (3, 4) parameter"),
        (lambda s: s["state"][0].update(exp_avg=torch.tensor(0.0)), "exp_avg of a (3, 4)"),
        (lambda s: s["state"][0].pop("exp_avg_sq"), "lacks exp_avg_sq"),
        (lambda s: s["state"][0].update(foo=torch.zeros(3, 4)), "holds 'foo', not AdamW's"),
        (lambda s: s["state"][0].update(step=torch.tensor(-1.0)), "step -1.0 is not a step count"),
        (lambda s: s["state"][0]["exp_avg_sq"].fill_(-1.0), "exp_avg_sq holds negative values"),
        (lambda s: s["state"][0]["exp_avg"].fill_(float("inf")), "exp_avg holds NaN or infinite"),
        (lambda s: s["param_groups"][0].update(lr="x"), "lr 'x' is not a value lr can take"),
        (lambda s: s["param_groups"][0].update(lr=-1.0), "lr -1.0 is not a value"),
        (lambda s: s["param_groups"][0].update(betas=(0.9, 1.5)), "betas (0.9, 1.5)"),
        (lambda s: s["param_groups"][0].update(amsgrad="yes"), "amsgrad 'yes'"),
        (lambda s: s["param_groups"][0].pop("eps"), "a parameter group lacks eps"),
    ]
    for change, words in cases:
        with pytest.raises(UserError, match=re.escape(words)):
            check_optimizer_state(opt, tampered(change), "last.pt")


def test_a_schedule_state_of_other_kinds_is_refused():
    from shared.optim import adamw, check_scheduler_state
    from shared.training import WarmupCosine

    opt = adamw(torch.nn.Linear(2, 2).parameters(), lr=0.1, device=torch.device("cpu"))
    schedule = torch.optim.lr_scheduler.LambdaLR(opt, WarmupCosine(2, 10))
    good = schedule.state_dict()
    check_scheduler_state(schedule, good, "last.pt")
    for bad in ({**good, "base_lrs": [float("nan")]}, {**good, "last_epoch": "3"}, {"x": 1}, []):
        with pytest.raises(UserError, match="learning-rate schedule's state"):
            check_scheduler_state(schedule, bad, "last.pt")
