"""The walk a reader takes through the code of one command, measured rather than written by hand,
counted as ``../shared/tools/walk-count.py`` counts it.

A reader reads each function once: its first call, and the return from that first call to its
caller. ``traced_walk(run)`` runs ``run()`` under ``sys.setprofile`` and ``threading.setprofile``
(every thread: a worker's calls are read too) and lists the workspace source files those events
land in (repeats in a row merged), up to the ``torch.save`` that writes the first checkpoint.
Module and class bodies (what an import runs) are not events. ``files`` is that list in
first-entry order (``P`` a project's file, ``S`` shared's); ``side_changes`` counts the changes
of side between consecutive events, returns included. shared/README.md states the counts of each
project's ``train`` and each project's tests check them against the code.
"""

from __future__ import annotations

import inspect
import re
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def side_of(filename: str) -> tuple[str, str] | None:
    """(``P``/``S``, the path a reader opens) for a workspace source file (a ``src`` tree, not a
    test), else None."""
    path = Path(filename).resolve()
    if not path.is_relative_to(ROOT) or "src" not in path.parts or "tests" in path.parts:
        return None
    if path.is_relative_to(ROOT / "testkit"):
        return None  # the tracer's own hook, not a file the command reads
    parts = path.parts[path.parts.index("src") + 1 :]
    side = "S" if path.is_relative_to(ROOT / "shared") else "P"
    return side, str(Path(*parts))


@dataclass
class Walk:
    """The files a command passes through, in the order it first enters each, and the changes of
    side (project <-> shared) along the way, counting returns."""

    files: list[tuple[str, str]]
    side_changes: int

    @property
    def counts(self) -> tuple[int, int, int, int]:
        """(files, project files, shared files, side changes)."""
        project = sum(s == "P" for s, _ in self.files)
        return len(self.files), project, len(self.files) - project, self.side_changes


def traced_walk(run: Callable[[], object]) -> Walk:
    """The walk of ``run()`` up to its first checkpoint (a ``torch.save`` into ``checkpoints``)."""
    import torch

    events: list[tuple[str, str]] = []
    seen: set = set()
    firsts: set[int] = set()
    state = {"done": False}

    def note(code) -> None:
        found = side_of(code.co_filename) if code.co_flags & inspect.CO_OPTIMIZED else None
        if found is not None and (not events or events[-1] != found):
            events.append(found)

    def profile(frame, event, arg):
        if state["done"]:
            return
        code = frame.f_code
        if event == "call" and code not in seen and side_of(code.co_filename) is not None:
            seen.add(code)
            firsts.add(id(frame))
            note(code)
        elif event == "return" and id(frame) in firsts:
            firsts.discard(id(frame))
            if frame.f_back is not None:
                note(frame.f_back.f_code)

    save = torch.save

    def saving(obj, f, *args, **kwargs):
        if not state["done"] and "checkpoints" in str(f):
            state["done"] = True
            sys.setprofile(None)
            threading.setprofile(None)
        return save(obj, f, *args, **kwargs)

    torch.save = saving
    threading.setprofile(profile)
    sys.setprofile(profile)
    try:
        run()
    finally:
        sys.setprofile(None)
        threading.setprofile(None)
        torch.save = save
    if not state["done"]:
        raise AssertionError("the command wrote no checkpoint: the walk has no end")
    files = list(dict.fromkeys(events))
    changes = sum(a[0] != b[0] for a, b in zip(events, events[1:], strict=False))
    return Walk(files, changes)


README = ROOT / "shared" / "README.md"
ROW = re.compile(
    r"^\| `(?P<project>[\w-]+) train[^`]*` \| (?P<files>\d+) \| (?P<p>\d+) / (?P<s>\d+) \| "
    r"(?P<changes>\d+) \|"
)
STEP = re.compile(r"^(?P<side>[PS]) (?P<file>\S+\.py)\b")


def stated_counts(project: str) -> tuple[int, int, int, int] | None:
    """(files, project files, shared files, side changes) shared/README.md states for
    ``project``."""
    for line in README.read_text().splitlines():
        m = ROW.match(line)
        if m and m["project"] == project:
            return tuple(int(m[k]) for k in ("files", "p", "s", "changes"))
    return None


def stated_walk() -> list[tuple[str, str]]:
    """The file-by-file walk shared/README.md lists (lines ``P file`` / ``S file``)."""
    return [(m["side"], m["file"]) for m in map(STEP.match, README.read_text().splitlines()) if m]


def check_walk(project: str, run: Callable[[], object]) -> Walk:
    """Trace ``run`` (the project's ``train`` on tiny data) and check shared/README.md's counts
    for it, and for austen-net the whole list, against what the code did."""
    walk = traced_walk(run)
    assert stated_counts(project) == walk.counts, f"{project}: measured {walk.counts}: {walk}"
    if project == "austen-net":
        assert stated_walk() == walk.files, walk.files
    return walk
