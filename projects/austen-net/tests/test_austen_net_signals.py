"""SIGTERM during training saves last.pt; --resume latest continues from that step."""

from austen_net.cli import main
from testkit import sigterm_then_resume

ARGS = [
    "train",
    "--preset",
    "tiny",
    "--vocab-size",
    "300",
    "--batch-size",
    "4",
    "--max-steps",
    "100000",
    "--eval-every",
    "100000",
    "--log-every",
    "2",
    "--device",
    "cpu",
    "--compile",  # a run this long compiles under auto; the stop and the resume are eager's too
    "off",
]


def test_sigterm_saves_and_resume_continues(tmp_path, corpus, capsys):
    out = tmp_path / "run"
    argv = [*ARGS, "--corpus-dir", corpus, "--out", out]
    assert sigterm_then_resume(main, "austen_net.cli", argv, out, capsys) >= 2
