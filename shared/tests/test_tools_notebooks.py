"""``tools/notebooks.py check`` on what is not a notebook: one line each, exit 1, no traceback,
and never a read that blocks (a FIFO) or never ends (``/dev/zero``)."""

import json
import os
import subprocess
import sys
from pathlib import Path

TOOL = Path(__file__).resolve().parents[2] / "tools" / "notebooks.py"


def test_what_is_not_a_notebook_is_one_line_each(tmp_path):
    broken = tmp_path / "broken.ipynb"
    broken.write_text('{"cells": [')
    listed = tmp_path / "list.ipynb"
    listed.write_text(json.dumps([1, 2, 3]))
    shapeless = tmp_path / "shapeless.ipynb"
    shapeless.write_text(json.dumps({"cells": "x", "nbformat": 4, "nbformat_minor": 5}))
    fifo = tmp_path / "fifo.ipynb"
    os.mkfifo(fifo)
    folder = tmp_path / "folder.ipynb"
    folder.mkdir()
    cases = {
        broken: "not a readable notebook",
        listed: "not a readable notebook",
        shapeless: "not a readable notebook",
        fifo: "a device, FIFO or socket, not a notebook",
        folder: "a folder, not a notebook",
        Path("/dev/zero"): "a device, FIFO or socket, not a notebook",
        tmp_path / "missing.ipynb": "no such file",
    }
    argv = [sys.executable, str(TOOL), "check", *map(str, cases)]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == len(cases), out.stderr
    for (path, words), line in zip(cases.items(), lines, strict=True):
        assert line.startswith(f"{path}: {words}"), line


def notebook(path: Path, *sources: str) -> Path:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# a lesson")]
    nb.cells += [nbformat.v4.new_code_cell(s) for s in sources]
    nbformat.write(nb, str(path))
    return path


def test_run_leaves_the_committed_copy_says_each_cell_and_stops_in_one_line(tmp_path):
    """A learner's ``run`` writes the executed copy under the data root's cache (the committed
    notebook's bytes unchanged), says cell n of N, and keeps the kernel's start-up warning out;
    a failing cell is one line: its number and its error, no traceback."""
    project = tmp_path / "projects" / "toy"
    project.mkdir(parents=True)
    good = notebook(project / "walkthrough.ipynb", "x = 6 * 7", "print(x)")
    before = good.read_bytes()
    env = {**os.environ, "DL_DATA_DIR": str(tmp_path / "data")}
    out = subprocess.run(
        [sys.executable, str(TOOL), "run", str(good)], capture_output=True, text=True, env=env
    )
    assert out.returncode == 0, out.stderr
    assert good.read_bytes() == before
    copy = tmp_path / "data" / "cache" / "toy" / "walkthrough" / "walkthrough.ipynb"
    assert "42" in copy.read_text() and f"written to {copy}" in out.stdout
    assert "cell 1 of 2" in out.stdout and "cell 2 of 2" in out.stdout
    assert "IPKernelApp" not in out.stdout + out.stderr

    bad = notebook(
        project / "stops.ipynb", "1 + 1", "raise SystemExit('run `toy data sample` first')"
    )
    out = subprocess.run(
        [sys.executable, str(TOOL), "run", str(bad)], capture_output=True, text=True, env=env
    )
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert (
        out.stderr.strip() == f"{bad}: stopped at cell 2: SystemExit: run `toy data sample` first"
    )
