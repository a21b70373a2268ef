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


# --- hostile files and huge inputs ------------------------------------------------------------


def test_every_numeric_flag_is_checked_when_parsed(capsys):
    from multi_net.cli import COMMANDS
    from shared.testing import assert_numeric_flags_checked

    assert assert_numeric_flags_checked(main, COMMANDS, capsys) > 15


def test_synth_counts_are_checked_before_any_work(capsys, tmp_path):
    out = tmp_path / "s"
    for videos, message in (("1000000000000", "at most 99,999 clips"), ("0", "at least 48")):
        argv = ["data", "synth", "--small", "--out", out, "--videos", videos]
        assert_clean_failure(main, argv, capsys, message, root=tmp_path)
    assert not out.exists()


def test_synth_never_overwrites_a_users_folder(capsys, tmp_path):
    out = tmp_path / "mine"
    (out / "videos").mkdir(parents=True)
    (out / "videos" / "holiday.mp4").write_bytes(b"my video")
    (out / "annotations.json").write_text("[]")
    argv = ["data", "synth", "--small", "--out", out, "--videos", "48", "--quiet"]
    assert_clean_failure(main, argv, capsys, "is not empty", root=tmp_path)
    assert (out / "videos" / "holiday.mp4").read_bytes() == b"my video"
    assert main([str(a) for a in [*argv, "--force"]]) == 0  # replaced whole, not mixed
    assert sorted(p.name for p in (out / "videos").iterdir())[0] == "synth00000.mp4"
    assert not (out / "videos" / "holiday.mp4").exists()
    assert len(json.loads((out / "annotations.json").read_text())) == 48
    assert [p.name for p in tmp_path.iterdir()] == ["mine"]  # no staging folder left
    fresh = tmp_path / "fresh"
    assert main([str(a) for a in [*argv[:-3], "--out", fresh, "--videos", "48", "--quiet"]]) == 0
    assert len(list((fresh / "videos").iterdir())) == 48


def test_bad_clip_weights_are_one_message_without_unsafe_advice(capsys, tmp_path):
    import pickle

    videos, ann, _ = plain_clips(tmp_path / "plain", n=4)
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(b"\x00\x01not weights" * 10)

    class Runs:
        def __reduce__(self):
            return (print, ("code ran",))

    evil = tmp_path / "evil.bin"
    evil.write_bytes(pickle.dumps(Runs()))
    for weights in (garbage, evil):
        argv = ["train", "--videos", videos, "--annotations", ann, "--clip-model", "mn-tiny"]
        argv += ["--clip-weights", weights, "--cache-dir", tmp_path / "cache", "--device", "cpu"]
        line = assert_clean_failure(main, argv, capsys, "not mn-tiny weights that load safely")
        assert "weights_only" not in line
    assert "code ran" not in capsys.readouterr().out
