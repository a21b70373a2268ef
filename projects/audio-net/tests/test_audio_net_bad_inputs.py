"""Bad input, as users give it: one line naming the problem, exit 2, nothing half-written."""

import pytest
import torch
from audio_net_data import make_gtzan, make_learnable_gtzan

from audio_net.cli import main
from shared.checkpoint import save_checkpoint
from shared.testing import assert_clean_failure


def test_bad_inputs(capsys, tmp_path):
    other = save_checkpoint(tmp_path / "o.pt", {}, project="austen-net")
    partial = save_checkpoint(tmp_path / "p.pt", {"model": {}}, project="audio-net")
    garbage = tmp_path / "g.pt"
    garbage.write_bytes(b"\x80\x04not a checkpoint")
    one_genre = make_learnable_gtzan(tmp_path / "one", per_genre=5, seconds=1.5, genres=[3])
    two_each = make_gtzan(tmp_path / "two", per_genre=2, seconds=1.5)
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    cases = [
        (["predict", "x.wav", "--checkpoint", other], "'austen-net', not 'audio-net'"),
        (["predict", "x.wav", "--checkpoint", partial], "lacks genres, feature_params, split"),
        (["predict", "x.wav", "--checkpoint", garbage], "not a readable PyTorch checkpoint"),
        (["evaluate", "--checkpoint", tmp_path / "nope.pt"], "does not exist"),
        (["train", "--epochs", "0"], "at least 1"),
        (["train", "--cv", "1"], "--cv takes K >= 2"),
        (["train", "--data-dir", tmp_path, "--no-download"], "data download"),
        (["train", "--data-dir", one_genre, "--no-pretrained"], "at least 2 genres"),
        (["train", "--data-dir", two_each, "--no-pretrained"], "val split is empty"),
        (["train", "--data-dir", two_each, "--cv", "3"], "needs at least 3 clips of every genre"),
        (["train", "--out", a_file], "is a file, not a folder"),
        (["train", "--cv", "2", "--resume", "latest"], "not resumable"),
    ]
    for argv, message in cases:
        argv = [*argv, "--cache-dir", tmp_path / "cache"] if argv[0] == "train" else argv
        assert_clean_failure(main, argv, capsys, message, root=tmp_path)
    assert not (tmp_path / "runs").exists()


def test_required_checkpoint(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["predict", "x.wav"])
    assert exc.value.code == 2 and "--checkpoint" in capsys.readouterr().err


def test_never_nan_in_the_summary(capsys, tmp_path):
    """Small data trains, validates and tests on real clips; every number is a number."""
    import json

    root = make_learnable_gtzan(tmp_path / "g", per_genre=3, seconds=2.0, genres=[0, 1])
    argv = [
        "train",
        "--data-dir",
        root,
        "--model",
        "cnn",
        "--no-pretrained",
        "--epochs",
        "2",
        "--quiet",
        "--device",
        "cpu",
        "--cache-dir",
        tmp_path / "cache",
        "--out",
        tmp_path / "r",
    ]
    assert main([str(a) for a in argv]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert "NaN" not in line and json.loads(line)["clips"] == {"train": 2, "val": 2, "test": 2}
    assert torch.isfinite(torch.tensor(json.loads(line)["val_loss"]))
