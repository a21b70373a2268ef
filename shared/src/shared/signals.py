"""SIGTERM handled like Ctrl-C: a training loop finishes its step, saves ``last.pt`` and stops.

``timeout``, ``docker stop`` and cluster schedulers stop a process with SIGTERM, whose default
action kills it on the spot, losing everything since the last checkpoint. ``install`` replaces that
action: outside a training loop SIGTERM raises ``Terminated`` at once; inside one (``stop_point``)
it only sets a flag, which the loop reads after each optimizer step (under torchrun every rank
reads the flag of every other, so all stop at the same step), then saves and raises ``Terminated``.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

from shared.errors import Terminated

_state = {"armed": 0, "requested": False, "raised": False}


def _on_sigterm(signum, frame) -> None:
    if _state["armed"]:
        _state["requested"] = True
        return
    if _state["raised"]:  # a second SIGTERM (``uv run`` forwards the one its group got) would
        return  # interrupt the shutdown the first began: atexit callbacks, temporary folders
    _state["raised"] = True
    raise Terminated("SIGTERM")


def install() -> None:
    """Handle SIGTERM as described above (only the main thread may set signal handlers)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_sigterm)
    _state["requested"] = False
    _state["raised"] = False


@contextlib.contextmanager
def stop_point() -> Iterator[None]:
    """While inside, SIGTERM is deferred to ``requested()`` instead of raised."""
    _state["armed"] += 1
    try:
        yield
    finally:
        _state["armed"] -= 1


def requested() -> bool:
    return _state["requested"]


def request() -> None:
    """Ask the running loop to stop, as SIGTERM does (tests and embedding applications)."""
    _state["requested"] = True
