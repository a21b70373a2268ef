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
