"""Bad input as users give it: one line naming the problem, exit 2, nothing half-written."""

import json

import pytest
from multi_net_data import plain_clips

from multi_net.cli import main
from shared.checkpoint import save_checkpoint
from shared.testing import assert_clean_failure


def test_bad_inputs(capsys, tmp_path):
    videos, ann, pairs = plain_clips(tmp_path / "plain", n=4)
    one = tmp_path / "one.json"
    one.write_text(json.dumps([{"video_id": "video0", "caption": "alone"}]))
    bad_split = tmp_path / "bad_split.json"
    bad_split.write_text(json.dumps([{"video_id": "video0", "caption": "x", "split": "dev"}]))
    other = save_checkpoint(tmp_path / "o.pt", {"model": {}}, project="audio-net")
    partial = save_checkpoint(tmp_path / "p.pt", {"model": {}}, project="multi-net")
    fake_index = tmp_path / "fake_index.pt"
    import torch

    torch.save({"format": "multi-net-index-v1", "ids": []}, fake_index)
    data = ["--videos", videos, "--annotations", ann, "--cache-dir", tmp_path / "cache"]
    tiny = ["--clip-model", "mn-tiny", "--no-pretrained", "--device", "cpu"]
    cases = [
        (["recommend", "--index", tmp_path / "none.pt", "--text", "x"], "no such file"),
        (["recommend", "--index", ann, "--text", "x"], "not a readable index"),
        (["recommend", "--index", fake_index, "--text", "x"], "lacks paths, embeddings"),
        (["recommend", "--index", fake_index], "exactly one of"),
        (["train", "--batch-size", "1"], "InfoNCE"),
        (["train", "--videos", tmp_path / "nowhere", "--annotations", ann], "does not exist"),
        (["train", *data, "--clip-model", "nope"], "unknown open_clip"),
        (
            ["train", *data, "--clip-model", "mn-tiny", "--clip-weights", tmp_path / "w.bin"],
            "no such file",
        ),
        (["train", "--videos", videos, "--annotations", one, *tiny], "needs at least 2"),
        (["train", "--videos", videos, "--annotations", bad_split, *tiny], "unknown split 'dev'"),
        (["evaluate", "--checkpoint", other], "checkpoint of 'audio-net'"),
        (
            ["index", "--checkpoint", partial, "--videos", videos, "--out", tmp_path / "i.pt"],
            "lacks config, fusion_config",
        ),
        (["index", "--checkpoint", partial, "--videos", videos, "--out", tmp_path], "is a folder"),
        (
            ["index", "--checkpoint", partial, "--videos", videos, "--out", "/proc/i.pt"],
            "cannot write in /proc",
        ),
        (["data", "synth"], "needs --out DIR"),
        (["data", "synth", "--out", tmp_path / "s", "--videos", "20"], "at least 432 clips"),
        (["train", *data, *tiny, "--out", ann], "is a file, not a folder"),
    ]
    for argv, message in cases:
        assert_clean_failure(main, argv, capsys, message, root=tmp_path)
    assert not (tmp_path / "runs").exists() and not (tmp_path / "s").exists()


def test_required_flags(capsys):
    for argv, flag in [(["index"], "--checkpoint"), (["recommend", "--text", "x"], "--index")]:
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2 and flag in capsys.readouterr().err
