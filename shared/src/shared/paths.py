"""Where things live: one rule for the data root, the runs root and the caches.

All three hang off the same place: the repository (the nearest folder at or above the current
directory holding a ``uv.lock``), or the current directory outside a checkout. Environment
variables move them: ``DL_DATA_DIR`` (data and caches) and ``DL_RUNS_DIR`` (run folders).

- data:   ``--data-dir`` > ``$DL_DATA_DIR`` > ``<repo>/data``
- caches: ``--cache-dir`` > ``<data root>/cache/<project>`` (the same ``--data-dir`` moves both)
- runs:   ``--out`` for one run > ``$DL_RUNS_DIR/<project>`` > ``<repo>/runs/<project>``;
  ``--resume latest`` looks in that runs root.
"""

from __future__ import annotations

import os
from pathlib import Path


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


def cache_root(project: str, cache_dir: str | Path | None, data_dir: str | Path | None) -> Path:
    """``--cache-dir``, else ``<data root>/cache/<project>``."""
    return Path(cache_dir) if cache_dir is not None else data_root(data_dir) / "cache" / project


def runs_root(project: str) -> Path:
    """``$DL_RUNS_DIR/<project>``, else ``<repo>/runs/<project>``."""
    env = os.environ.get("DL_RUNS_DIR")
    return (Path(env) if env else _base() / "runs") / project
