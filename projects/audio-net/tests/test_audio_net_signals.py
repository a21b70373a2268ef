"""SIGTERM during audio-net training saves last.pt; --resume latest continues from that step."""

from audio_net_data import make_learnable_gtzan

from audio_net.cli import main
from testkit import sigterm_then_resume


def test_sigterm_saves_and_resume_continues(tmp_path, capsys):
    data = make_learnable_gtzan(tmp_path / "gtzan", per_genre=3, seconds=4.0)
    out = tmp_path / "run"
    argv = ["train", "--data-dir", data, "--model", "cnn", "--no-pretrained", "--epochs", "300"]
    argv += ["--batch-size", "8", "--device", "cpu", "--cache-dir", tmp_path / "cache"]
    sigterm_then_resume(main, "audio_net.cli", [*argv, "--out", out], out, capsys)
