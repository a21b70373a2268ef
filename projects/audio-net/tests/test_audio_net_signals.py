"""SIGTERM during audio-net training saves last.pt; --resume latest continues from that step."""

import re

from audio_net_data import make_learnable_gtzan

from audio_net.cli import main
from shared.checkpoint import load_checkpoint
from shared.testing import sigterm_when


def test_sigterm_saves_and_resume_continues(tmp_path, capsys):
    data = make_learnable_gtzan(tmp_path / "gtzan", per_genre=3, seconds=4.0)
    out = tmp_path / "run"
    argv = ["train", "--data-dir", data, "--model", "cnn", "--no-pretrained", "--epochs", "300"]
    argv += ["--batch-size", "8", "--device", "cpu", "--cache-dir", tmp_path / "cache"]
    argv += ["--out", out]
    proc = sigterm_when(["audio_net.cli", *argv, "--quiet"], out / "metrics.csv", cwd=tmp_path)
    assert proc.returncode == 143, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    message = proc.stderr.strip().splitlines()[-1]
    saved = int(
        re.fullmatch(r"audio-net: stopped by SIGTERM: saved last.pt at step (\d+)", message)[1]
    )
    state = load_checkpoint(out / "checkpoints" / "last.pt", project="audio-net")
    assert state["step"] == saved > 0
    assert main([str(a) for a in [*argv, "--resume", "latest", "--max-minutes", "0.05"]]) == 0
    assert f"at step {saved}" in capsys.readouterr().err
    steps = [int(r.split(",")[0]) for r in (out / "metrics.csv").read_text().splitlines()[1:]]
    assert steps == sorted(steps) and steps[-1] > saved
