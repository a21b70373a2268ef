"""SIGTERM during MNIST training saves last.pt; --resume latest continues from that step."""

from intro_nn.cli import main
from testkit import sigterm_then_resume


def test_sigterm_saves_and_resume_continues(tmp_path, digit_folder, capsys):
    out = tmp_path / "run"
    argv = ["train", "mnist", "--data-dir", digit_folder, "--out", out, "--epochs", "40"]
    argv += ["--batch-size", "32", "--no-sklearn", "--device", "cpu"]
    saved = sigterm_then_resume(main, "intro_nn.cli", argv, out, capsys)
    assert saved < 40 * 22  # stopped well before the end of the schedule
