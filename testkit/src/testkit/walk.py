"""The walk a reader takes through the code of one command, measured rather than written by hand.

``traced_walk(run)`` runs ``run()`` under ``sys.setprofile`` and lists the workspace's source files
in the order the command first calls a function in each (``P`` a project's, ``S`` shared's; the
module bodies that imports run are not calls a reader follows), up to the call that
writes the first checkpoint (``shared.checkpoint.save_checkpoint``). ``switches`` counts the
changes of side between consecutive files of that list. shared/README.md's walk is checked
against it by each project's tests, so the counts it states are the ones the code gives.
"""

from __future__ import annotations

import inspect
import re
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
SIDES = {ROOT / "shared" / "src": "S", ROOT / "projects": "P"}
STOP = ("save_checkpoint", str(ROOT / "shared" / "src" / "shared" / "checkpoint.py"))


class Reached(BaseException):  # not an Exception: no handler in the command catches it
    """Raised inside the command once the first checkpoint is being written: the walk ends."""


def side_of(filename: str) -> tuple[str, str] | None:
    """(``P``/``S``, the path a reader opens) for a workspace source file, else None."""
    path = Path(filename)
    for root, side in SIDES.items():
        parts = path.relative_to(root).parts if path.is_relative_to(root) else ()
        if side == "S" and parts:  # src/shared/lifecycle.py
            return side, str(Path(*parts))
        if side == "P" and len(parts) > 2 and parts[1] == "src":  # austen-net/src/austen_net/..
            return side, str(Path(*parts[2:]))
    return None


COMPREHENSIONS = ("<listcomp>", "<genexpr>", "<dictcomp>", "<setcomp>")


def in_function(frame) -> bool:
    """Whether ``frame`` runs inside a function call (a comprehension's caller decides)."""
    while frame is not None and frame.f_code.co_name in COMPREHENSIONS:
        frame = frame.f_back
    return frame is not None and bool(frame.f_code.co_flags & inspect.CO_OPTIMIZED)


def traced_walk(run: Callable[[], object]) -> list[tuple[str, str]]:
    """[(side, file)] in the order ``run()`` first enters each, until the first checkpoint."""
    seen: dict[str, str] = {}
    stop = False

    def profile(frame, event, arg):
        nonlocal stop
        if event != "call" or stop:
            return
        code = frame.f_code
        if not (code.co_flags & inspect.CO_OPTIMIZED and in_function(frame)):
            return  # a module or class body (or a comprehension in one): an import, not a call
        found = side_of(code.co_filename)
        if found is not None:
            seen.setdefault(found[1], found[0])
            if (code.co_name, code.co_filename) == STOP:
                stop = True
                raise Reached

    sys.setprofile(profile)
    try:
        run()
    except Reached:
        pass
    finally:
        sys.setprofile(None)
    if not stop:
        raise AssertionError("the command wrote no checkpoint: the walk has no end")
    return [(side, name) for name, side in seen.items()]


def switches(walk: list[tuple[str, str]]) -> int:
    """Changes of side (project <-> shared) between consecutive files of the walk."""
    return sum(a[0] != b[0] for a, b in zip(walk, walk[1:], strict=False))


README = ROOT / "shared" / "README.md"
ROW = re.compile(
    r"^\| `(?P<project>[\w-]+) train[^`]*` \| (?P<files>\d+) \| (?P<p>\d+) / (?P<s>\d+) \| (?P<switches>\d+) \|"
)
STEP = re.compile(r"^(?P<side>[PS]) (?P<file>\S+\.py)\b")


def stated_counts(project: str) -> tuple[int, int, int, int] | None:
    """(files, project files, shared files, switches) shared/README.md states for ``project``."""
    for line in README.read_text().splitlines():
        m = ROW.match(line)
        if m and m["project"] == project:
            return tuple(int(m[k]) for k in ("files", "p", "s", "switches"))
    return None


def stated_walk() -> list[tuple[str, str]]:
    """The file-by-file walk shared/README.md lists (lines ``P file`` / ``S file``)."""
    return [(m["side"], m["file"]) for m in map(STEP.match, README.read_text().splitlines()) if m]


def check_walk(project: str, run: Callable[[], object]) -> list[tuple[str, str]]:
    """Trace ``run`` (the project's ``train`` on tiny data) and check shared/README.md's counts
    for it, and for austen-net the whole list, against what the code did."""
    walk = traced_walk(run)
    measured = (len(walk), sum(s == "P" for s, _ in walk), sum(s == "S" for s, _ in walk))
    measured += (switches(walk),)
    assert stated_counts(project) == measured, f"{project}: measured {measured}: {walk}"
    if project == "austen-net":
        assert stated_walk() == walk, walk
    return walk
