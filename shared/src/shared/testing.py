"""Test helpers the projects share: the real-sample fixture, test isolation, CLI checks.

Import the fixtures into a project's ``conftest.py``::

    from shared.testing import isolated, real_data  # noqa: F401

This module needs pytest (``shared[testing]``, and every package's ``dev`` group); nothing outside
the tests imports it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest


def real_data_root() -> Path | None:
    """``$DL_TEST_DATA``, else ``../shared/data`` beside the checkout (read-only real samples)."""
    env = os.environ.get("DL_TEST_DATA")
    candidates = [Path(env)] if env else []
    candidates.append(Path(__file__).resolve().parents[3] / ".." / "shared" / "data")
    for c in candidates:
        if c.is_dir():
            return c.resolve()
    return None


@pytest.fixture()
def real_data() -> Path:
    root = real_data_root()
    if root is None:
        pytest.skip(
            "real samples not found: set DL_TEST_DATA or place ../shared/data beside the checkout"
        )
    return root


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Every test runs in its own folder with its own data root: nothing lands in the checkout."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DL_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DL_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("MPLBACKEND", "Agg")


def check_cli_help(main: Callable, commands: dict, module: str, prog: str, capsys) -> None:
    """``--help`` lists every subcommand, and ``python -m <module> --help`` runs."""
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for name in commands:
        assert name in out
    proc = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and f"usage: {prog}" in proc.stdout


def leftovers(root: Path) -> list[Path]:
    """Half-written files under ``root``: temporaries of atomic writes."""
    return sorted(p for p in Path(root).rglob(".*.tmp"))


def assert_clean_failure(
    main: Callable,
    argv: list[str],
    capsys,
    message: str,
    *,
    code: int = 2,
    root: Path | None = None,
) -> str:
    """``main(argv)`` exits with ``code`` and ONE line on stderr naming the problem, no traceback,
    and (with ``root``) no temporaries left under ``root``. Returns that line."""
    got = main([str(a) for a in argv])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert got == code, f"exit {got}, not {code}: {err}"
    assert "Traceback" not in err, err
    errors = [line for line in lines if ": error: " in line]
    assert len(errors) == 1, f"expected one error line, got: {err}"
    assert message in errors[0], f"{message!r} not in {errors[0]!r}"
    if root is not None:
        assert leftovers(root) == [], leftovers(root)
    return errors[0]


def sigterm_when(
    argv: list[str], ready: Path, *, cwd: Path, timeout: float = 180.0
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
