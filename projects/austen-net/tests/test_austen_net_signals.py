"""SIGTERM during training saves last.pt; --resume latest continues from that step."""

import json
import re

from austen_net.cli import main
from shared.checkpoint import load_checkpoint
from shared.testing import sigterm_when

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
    "--quiet",
]


def test_sigterm_saves_and_resume_continues(tmp_path, corpus, capsys):
    out = tmp_path / "run"
    argv = [*ARGS, "--corpus-dir", str(corpus), "--out", str(out)]
    proc = sigterm_when(["austen_net.cli", *argv], out / "metrics.csv", cwd=tmp_path)
    assert proc.returncode == 143, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    message = proc.stderr.strip().splitlines()[-1]
    saved = int(
        re.fullmatch(r"austen-net: stopped by SIGTERM: saved last.pt at step (\d+)", message)[1]
    )
    assert (
        load_checkpoint(out / "checkpoints" / "last.pt", project="austen-net")["step"] == saved >= 2
    )
    resume = [a for a in argv if a != "--quiet"]
    assert main([*resume, "--resume", "latest", "--max-minutes", "0.02"]) == 0
    captured = capsys.readouterr()
    assert f"resumed from {out / 'checkpoints' / 'last.pt'} at step {saved}" in captured.err
    assert json.loads(captured.out.strip().splitlines()[-1])["steps"] > saved
