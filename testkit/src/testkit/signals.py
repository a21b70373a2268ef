"""SIGTERM harness: stop a training subprocess when a condition holds (a file, a line), then resume it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path


def sigterm_when(
    argv: list[str], ready: Path, *, cwd: Path, timeout: float = 900.0
) -> subprocess.CompletedProcess:
    """Run ``python -m argv...`` and send it SIGTERM once ``ready`` exists (training has begun),
    as ``timeout`` or ``docker stop`` would. Returns the finished process with its output."""
    import signal
    import time

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", *map(str, argv)],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + timeout
    while not Path(ready).exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            out, err = proc.communicate()
            raise AssertionError(f"{ready} never appeared (exit {proc.returncode}): {err[-2000:]}")
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def sigterm_then_resume(main: Callable, module: str, argv: list, out: Path, capsys) -> int:
    """The SIGTERM contract of a trainer, as a user meets it: ``python -m module argv --quiet``
    (``argv`` ending in ``--out out``) gets SIGTERM once ``out/metrics.csv`` exists; it must exit
    143 with one line "stopped by SIGTERM: saved last.pt at step N", no traceback, and ``last.pt``
    at step N. Then ``main(argv --resume latest --max-minutes 0.05)`` must say it resumed at step
    N and log steps past N. Returns N."""

    from shared.checkpoint import load_checkpoint

    argv = [str(a) for a in argv]
    proc = sigterm_when([module, *argv, "--quiet"], Path(out) / "metrics.csv", cwd=Path(out).parent)
    assert proc.returncode == 143, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    message = proc.stderr.strip().splitlines()[-1]
    found = re.fullmatch(r"[\w-]+: stopped by SIGTERM: saved last.pt at step (\d+)", message)
    assert found, message
    saved = int(found[1])
    state = load_checkpoint(Path(out) / "checkpoints" / "last.pt", project=message.split(":")[0])
    assert state["step"] == saved > 0
    assert main([*argv, "--resume", "latest", "--max-minutes", "0.05"]) == 0
    assert f"at step {saved}" in capsys.readouterr().err
    rows = (Path(out) / "metrics.csv").read_text().splitlines()[1:]
    steps = [int(r.split(",")[0]) for r in rows]
    assert steps == sorted(steps) and steps[-1] > saved, steps
    return saved
