"""Progress bars that stay silent with ``--quiet`` or when stdout is not a terminal."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

from tqdm.auto import tqdm


def bars_enabled(quiet: bool = False) -> bool:
    return not quiet and sys.stdout.isatty()


def progress(iterable: Iterable | None = None, *, quiet: bool = False, **kwargs: Any) -> tqdm:
    """``tqdm`` with ``disable`` set from ``quiet`` and whether stdout is a terminal."""
    kwargs.setdefault("dynamic_ncols", True)
    kwargs.setdefault("leave", False)
    return tqdm(iterable, disable=not bars_enabled(quiet), **kwargs)


def info(message: str, quiet: bool = False) -> None:
    """A status line on stderr (stdout stays for results)."""
    if not quiet:
        print(message, file=sys.stderr, flush=True)


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)
