"""Progress you can read wherever it goes: a bar in a terminal, steady lines in a log.

When stderr is a terminal, ``progress`` is a ``tqdm`` bar. When it is not (a log file, a notebook,
CI, ``nohup``), a bar would be one long line of carriage returns, or nothing at all; instead a
``ProgressLines`` prints one plain line every ``$DL_PROGRESS_EVERY`` seconds (30 by default) with
the step, the loss, the time so far and an estimate of the time left, and a last line at the end
of a run that printed any. ``--quiet`` silences both. Status lines are ``logging``'s INFO
(``shared.cli`` shows them on stderr); ``warn`` is a warning line, shown even with ``--quiet``.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from tqdm.auto import tqdm

PROGRESS_EVERY_S = 30.0  # seconds between progress lines in a log


def bars_enabled(quiet: bool = False) -> bool:
    """Whether to draw a bar: not quiet, and stderr (where bars go) is a terminal."""
    return not quiet and sys.stderr.isatty()


def duration(seconds: float) -> str:
    """``42 s``, ``3 min 5 s``, ``2 h 07 min``."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class ProgressLines:
    """tqdm's interface (``update``, ``set_postfix``, ``close``, iteration) as plain lines on
    stderr, at most one every ``every`` seconds: ``train: step 400/2001 (20%), loss 1.93, 2 min
    10 s elapsed, about 8 min 40 s left``."""

    def __init__(
        self,
        iterable: Iterable | None = None,
        *,
        total: int | None = None,
        initial: int = 0,
        desc: str = "progress",
        unit: str = "it",
        every: float | None = None,
        **_: Any,
    ) -> None:
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)
        self.iterable, self.total, self.n, self.first = iterable, total, initial, initial
        self.desc, self.unit, self.postfix = desc, unit, ""
        env = os.environ.get("DL_PROGRESS_EVERY")
        self.every = every if every is not None else float(env) if env else PROGRESS_EVERY_S
        self.t0 = self.last = time.monotonic()
        self.printed = False
        self.clock: tuple[float, int] | None = None  # (time, n) at the first update

    def __iter__(self) -> Iterator:
        for item in self.iterable or ():
            yield item
            self.update(1)
        self.close()

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if self.clock is None:  # the first step (compiling, warming up) is not a typical one
            self.clock = (now, self.n)
        if now - self.last >= self.every:
            self.last = now
            self.write(now)

    def set_postfix(self, **values: Any) -> None:
        self.postfix = ", ".join(f"{k} {v}" for k, v in values.items())

    def line(self, now: float) -> str:
        elapsed, done = now - self.t0, self.n - self.first
        count = f"{self.unit} {self.n}" + (
            f"/{self.total} ({100 * self.n / self.total:.0f}%)" if self.total else ""
        )
        parts = [f"{self.desc}: {count}", self.postfix, f"{duration(elapsed)} elapsed"]
        if self.total and done > 0 and self.n < self.total:
            since, n = self.clock or (self.t0, self.first)
            if self.n > n:  # the rate after the first step: a compile is not counted as a step
                left = (now - since) / (self.n - n) * (self.total - self.n)
                parts.append(f"about {duration(left)} left")
        return ", ".join(p for p in parts if p)

    def write(self, now: float) -> None:
        print(self.line(now), file=sys.stderr, flush=True)
        self.printed = True

    def close(self) -> None:
        if self.printed:  # a run long enough to report ends with where it ended
            self.printed = False
            self.write(time.monotonic())


@contextmanager
def busy(bar: tqdm | ProgressLines, what: str) -> Iterator[None]:
    """Say what a long pause in ``bar`` is doing (an evaluation): a terminal's bar shows it; a
    log gets a line every ``every`` seconds while it lasts, so a log never goes silent."""
    if getattr(bar, "disable", False):  # --quiet
        yield
        return
    if not isinstance(bar, ProgressLines):
        desc = bar.desc.rstrip(": ")
        bar.set_description(f"{desc} ({what})")
        try:
            yield
        finally:
            bar.set_description(desc)
        return
    stop, t0 = threading.Event(), time.monotonic()

    def beat() -> None:
        while not stop.wait(max(bar.every, 0.5)):
            so_far = duration(time.monotonic() - t0)
            print(f"{bar.desc}: {bar.unit} {bar.n}, {what}, {so_far} so far", file=sys.stderr)
            bar.printed = True

    thread = threading.Thread(target=beat, name="progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def progress(
    iterable: Iterable | None = None, *, quiet: bool = False, **kwargs: Any
) -> tqdm | ProgressLines:
    """A ``tqdm`` bar on a terminal, ``ProgressLines`` in a log, nothing with ``quiet``."""
    if quiet or bars_enabled(quiet):
        kwargs.setdefault("dynamic_ncols", True)
        kwargs.setdefault("leave", False)
        return tqdm(iterable, disable=quiet, **kwargs)
    return ProgressLines(iterable, **kwargs)


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)
