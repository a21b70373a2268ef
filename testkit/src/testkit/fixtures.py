"""Fixtures every package's tests use: the real samples (skipped where absent), and isolation (each test in its own folder with its own data and runs roots: nothing lands in the checkout)."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import pytest

from shared.files import repo_root


def real_data_root() -> Path | None:
    """``$DL_TEST_DATA``, else ``../shared/data`` beside the checkout (read-only real samples)."""
    env = os.environ.get("DL_TEST_DATA")
    candidates = [Path(env)] if env else []
    checkout = repo_root(Path(__file__).resolve().parent)  # the workspace this package sits in
    if checkout is not None:
        candidates.append(checkout.parent / "shared" / "data")
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


@pytest.fixture(autouse=True, scope="session")
def session_roots(tmp_path_factory):
    """Module- and session-scoped fixtures (a model trained once for several tests) run before
    ``isolated``: their data, cache and runs roots are a session folder too, never the checkout."""
    root = tmp_path_factory.mktemp("session-roots")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DL_DATA_DIR", str(root / "data"))
        mp.setenv("DL_RUNS_DIR", str(root / "runs"))
        yield root


class CurrentStderr(logging.StreamHandler):
    """Status lines to whatever ``sys.stderr`` is when they are logged (``capsys`` swaps it)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):  # (StreamHandler sets it once; the property decides)
        pass


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Every test runs in its own folder with its own data root: nothing lands in the checkout.
    The status lines the workspace logs show on stderr, as a command shows them, also where a
    test calls a function directly (a command run by the test sets its own)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DL_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DL_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    for name in ("shared", "intro_nn", "audio_net", "austen_net", "multi_net"):
        logger = logging.getLogger(name)
        monkeypatch.setattr(logger, "handlers", [CurrentStderr()])
        monkeypatch.setattr(logger, "propagate", False)
        logger.setLevel(logging.INFO)


def random_pretrained(project: Path, model: str, out: Path, *labels: str) -> Path:
    """Build a tiny random ``model`` folder (``ast`` or ``clap``) at ``out`` with the command the
    project's NOTES.md gives users (``tools/random_pretrained.py ... --tiny``): the tests load what
    a user who follows the notes gets."""
    import shlex
    import subprocess

    notes = (project / "NOTES.md").read_text()
    tool = f"python tools/random_pretrained.py {model} "
    line = next((ln for ln in notes.splitlines() if tool in ln), None)
    assert line is not None, f"{project.name}/NOTES.md gives no '{tool}...' command"
    argv = shlex.split(line.split(" python ", 1)[1])
    argv[2] = str(out)  # the folder the note names, made here instead
    if labels:
        argv += ["--labels", ",".join(labels)]
    root = project.resolve().parents[1]
    done = subprocess.run([sys.executable, *argv], cwd=root, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    return out
