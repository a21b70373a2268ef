"""Test helpers the projects share: the real-sample fixture, test isolation, CLI smoke checks.

Import the fixtures into a project's ``conftest.py``::

    from shared.testing import isolated, real_data  # noqa: F401
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
