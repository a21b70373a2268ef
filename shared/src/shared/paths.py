"""Where things live: one rule for the data root, the runs root and the caches.

All three hang off the same place: the repository (the nearest folder at or above the current
directory holding a ``uv.lock``), or the current directory outside a checkout. Environment
variables move them: ``DL_DATA_DIR`` (data and caches) and ``DL_RUNS_DIR`` (run folders).

- data:   ``--data-dir`` > ``$DL_DATA_DIR`` > ``<repo>/data``
- caches: ``--cache-dir`` > ``$DL_DATA_DIR/cache/<project>`` > ``<repo>/data/cache/<project>``
  (``--data-dir`` does not move them: it may name a user's own, even read-only, folder)
- runs:   ``--out`` for one run > ``$DL_RUNS_DIR/<project>`` > ``<repo>/runs/<project>``;
  ``--resume latest`` looks in that runs root.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from shared.errors import UserError


def repo_root(start: Path | None = None) -> Path | None:
    """The nearest folder at or above ``start`` (default: cwd) holding a ``uv.lock``."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "uv.lock").is_file():
            return folder
    return None


def _base() -> Path:
    root = repo_root()
    return root if root is not None else Path.cwd()


def data_root(data_dir: str | Path | None = None) -> Path:
    """``--data-dir``, else ``$DL_DATA_DIR``, else ``<repo>/data`` (git-ignored)."""
    if data_dir is not None:
        return Path(data_dir)
    env = os.environ.get("DL_DATA_DIR")
    return Path(env) if env else _base() / "data"


def cache_root(project: str, cache_dir: str | Path | None = None) -> Path:
    """``--cache-dir``, else ``<data root>/cache/<project>`` of the DEFAULT data root
    (``$DL_DATA_DIR`` or ``<repo>/data``): never inside a folder ``--data-dir`` points at, which
    may be the user's own (read-only, or where a cache folder would read as more data)."""
    return Path(cache_dir) if cache_dir is not None else data_root(None) / "cache" / project


def runs_root(project: str) -> Path:
    """``$DL_RUNS_DIR/<project>``, else ``<repo>/runs/<project>``."""
    env = os.environ.get("DL_RUNS_DIR")
    return (Path(env) if env else _base() / "runs") / project


def require_file(path: Path | None, flag: str) -> None:
    """Refuse a missing input file at once, before a command imports torch and its models (a typo
    should not take seconds to report). Imports nothing; raises ``shared.errors.UserError``."""
    if path is None:
        return
    if not Path(path).exists():
        raise UserError(f"{flag} {path}: no such file")
    if not Path(path).is_file():
        raise UserError(f"{flag} {path}: not a regular file")


def read_regular_file(path: Path, limit: int, what: str = "") -> bytes:
    """The bytes of ``path``, a regular file (a symbolic link to one is fine) of at most ``limit``
    bytes, else one ``UserError``: a device (``/dev/zero``), a FIFO (which would block the read
    forever), a folder, or a file too big to be what ``what`` names is refused before it is read.
    The read itself is bounded too, so a file that grows while read cannot exceed the limit."""
    path = Path(path)
    name = what or path.name
    try:
        mode = path.stat().st_mode
    except FileNotFoundError as exc:
        raise UserError(f"{path}: no such file") from exc
    except OSError as exc:
        raise UserError(
            f"{path}: cannot be read ({exc.strerror or exc.__class__.__name__})"
        ) from exc
    if not stat.S_ISREG(mode):
        kind = "a folder" if stat.S_ISDIR(mode) else "a device, FIFO or socket"
        raise UserError(f"{path} is {kind}, not a regular file: not a {name}")
    try:
        with open(path, "rb") as fh:
            data = fh.read(limit + 1)
    except OSError as exc:
        raise UserError(
            f"{path}: cannot be read ({exc.strerror or exc.__class__.__name__})"
        ) from exc
    if len(data) > limit:
        raise UserError(f"{path} is over {limit:,} bytes: too big to be a {name}")
    return data
