"""SIGTERM during multi-net training saves last.pt; --resume latest continues from that step."""

import re

from multi_net_data import plain_clips

from multi_net.cli import main
from shared.checkpoint import load_checkpoint
from shared.testing import sigterm_when


def test_sigterm_saves_and_resume_continues(tmp_path, capsys):
    videos, ann, pairs = plain_clips(tmp_path / "plain", n=24)
    out = tmp_path / "run"
    argv = ["train", "--videos", videos, "--annotations", ann, pairs, "--train-split", "all"]
    argv += ["--clip-model", "mn-tiny", "--no-pretrained", "--device", "cpu", "--num-frames", "4"]
    argv += ["--epochs", "500", "--batch-size", "4", "--cache-dir", tmp_path / "cache"]
    argv += ["--out", out]
    proc = sigterm_when(["multi_net.cli", *argv, "--quiet"], out / "metrics.csv", cwd=tmp_path)
    assert proc.returncode == 143, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    message = proc.stderr.strip().splitlines()[-1]
    saved = int(
        re.fullmatch(r"multi-net: stopped by SIGTERM: saved last.pt at step (\d+)", message)[1]
    )
    state = load_checkpoint(out / "checkpoints" / "last.pt", project="multi-net")
    assert state["step"] == saved > 0
    assert main([str(a) for a in [*argv, "--resume", "latest", "--max-minutes", "0.05"]]) == 0
    assert f"at step {saved}" in capsys.readouterr().err
    steps = [int(r.split(",")[0]) for r in (out / "metrics.csv").read_text().splitlines()[1:]]
    assert steps == sorted(steps) and steps[-1] > saved
