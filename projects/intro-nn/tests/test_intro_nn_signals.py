"""SIGTERM during MNIST training saves last.pt; --resume latest continues from that step."""

import json
import re

from intro_nn.cli import main
from shared.checkpoint import load_checkpoint
from shared.testing import sigterm_when


def test_sigterm_saves_and_resume_continues(tmp_path, digit_folder, capsys):
    out = tmp_path / "run"
    argv = [
        "train",
        "mnist",
        "--data-dir",
        digit_folder,
        "--out",
        out,
        "--epochs",
        "40",
        "--batch-size",
        "32",
        "--no-sklearn",
        "--quiet",
        "--device",
        "cpu",
    ]
    proc = sigterm_when(["intro_nn.cli", *argv], out / "metrics.csv", cwd=tmp_path)
    assert proc.returncode == 143, proc.stderr[-2000:]
    message = proc.stderr.strip().splitlines()[-1]
    assert "Traceback" not in proc.stderr
    saved = int(
        re.fullmatch(r"intro-nn: stopped by SIGTERM: saved last.pt at step (\d+)", message)[1]
    )
    state = load_checkpoint(out / "checkpoints" / "last.pt", project="intro-nn")
    assert state["step"] == saved and 0 < saved < 40 * 22
    # the resumed run starts at the saved step and finishes the schedule
    resume = [str(a) for a in argv if a != "--quiet"]
    assert main([*resume, "--resume", "latest", "--max-minutes", "0.05"]) == 0
    err = capsys.readouterr()
    assert f"at step {saved}" in err.err
    steps = [int(r.split(",")[0]) for r in (out / "metrics.csv").read_text().splitlines()[1:]]
    assert steps == sorted(steps) and steps[-1] > saved
    assert json.loads(err.out.strip().splitlines()[-1])["epochs"] >= saved // 22
