"""SIGTERM during multi-net training saves last.pt; --resume latest continues from that step."""

from multi_net_data import plain_clips

from multi_net.cli import main
from testkit import sigterm_then_resume


def test_sigterm_saves_and_resume_continues(tmp_path, capsys):
    videos, ann, pairs = plain_clips(tmp_path / "plain", n=24)
    out = tmp_path / "run"
    argv = ["train", "--videos", videos, "--annotations", ann, pairs, "--train-split", "all"]
    argv += ["--clip-model", "mn-tiny", "--no-pretrained", "--device", "cpu", "--num-frames", "4"]
    argv += ["--epochs", "500", "--batch-size", "4", "--cache-dir", tmp_path / "cache"]
    sigterm_then_resume(main, "multi_net.cli", [*argv, "--out", out], out, capsys)
