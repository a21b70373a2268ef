"""Files: where they live, and how they are read and written.

Where: one rule for the data root, the runs root and the caches. All three hang off the same
place: the repository (the nearest folder at or above the current directory holding a
``uv.lock``), or the current directory outside a checkout. Environment variables move them:
``DL_DATA_DIR`` (data and caches) and ``DL_RUNS_DIR`` (run folders).

- data:   ``--data-dir`` > ``$DL_DATA_DIR`` > ``<repo>/data``
- caches: ``--cache-dir`` > ``$DL_DATA_DIR/cache/<project>`` > ``<repo>/data/cache/<project>``
  (``--data-dir`` does not move them: it may name a user's own, even read-only, folder)
- runs:   ``--out`` for one run > ``$DL_RUNS_DIR/<project>`` > ``<repo>/runs/<project>``;
  ``--resume latest`` looks in that runs root.

Reading: ``read_regular_file`` reads regular files only, bounded (a device, a FIFO or a huge file
is refused before it is read). Writing is atomic: to a temporary name beside the target, then
``os.replace``, so a crash or Ctrl-C mid-write leaves the previous file intact and no
half-written one behind. The temporary file is created private (``mkstemp``: mode 0600); it gets
the mode a plain ``open`` would have given it (0666 less the umask) before it takes the target's
name, so teammates and web servers can read run folders as the umask allows. JSON is written
strict (``to_jsonable``: no NaN), as config.json and summary.json hold it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import math
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from shared.errors import UserError

# --- where files live ---------------------------------------------------------------------------


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


# --- writing them atomically -----------------------------------------------------------------


def umask() -> int:
    """The process's umask (read by setting it and putting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def default_mode(directory: bool = False) -> int:
    return (0o777 if directory else 0o666) & ~umask()


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``, on error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = default_mode()
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        raise_os_error_inside(exc, path)
        raise


def share_as_umask_allows(folder: Path) -> None:
    """``folder`` and everything in it get the modes a plain ``mkdir``/``open`` would have given
    (0777/0666 less the umask): libraries that write privately (safetensors' 0600) do not decide
    who may read an export."""
    os.chmod(folder, default_mode(directory=True))
    for root, dirs, files in os.walk(folder):
        for name in dirs:
            os.chmod(os.path.join(root, name), default_mode(directory=True))
        for name in files:
            file = os.path.join(root, name)
            if not os.path.islink(file):
                os.chmod(file, default_mode())


def require_new_folder(path: str | Path, flag: str = "--out") -> Path:
    """Refuse, before any work, an output folder ``atomic_dir`` must not replace: a symbolic link
    (it may point anywhere, a system folder included), a file, or a folder that holds anything
    (an export never overwrites files a user has)."""
    path = Path(path)
    if path.is_symlink():
        raise UserError(f"{flag} {path} is a symbolic link: name a new folder")
    if path.exists() and not path.is_dir():
        raise UserError(f"{flag} {path} is a file, not a folder")
    if path.is_dir() and any(path.iterdir()):
        raise UserError(f"{flag} {path} exists and is not an empty folder: name a new one")
    check_can_write_beside(path, flag)
    return path


def check_can_write_beside(path: Path, flag: str) -> None:
    """Refuse, before any work, a ``path`` whose nearest existing folder cannot take a new entry
    (a read-only mount, a folder of another user): the staging folder is made there, so an export
    would otherwise fail after its work, naming the staging folder instead of ``flag``."""
    parent = path.absolute().parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    try:
        Path(tempfile.mkdtemp(prefix=f".{path.name}.probe.", dir=parent)).rmdir()
    except OSError as exc:
        raise UserError(
            f"{flag} {path}: cannot write in {parent} ({exc.strerror or exc.__class__.__name__})"
        ) from exc


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Fill a temporary folder beside ``path``; on success it gets the permissions the umask gives
    (``mkdtemp`` makes it private) and is renamed to ``path`` (which may exist only empty); on any
    error it is removed and ``path`` is untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        yield tmp
        share_as_umask_allows(tmp)
        if path.exists():
            path.rmdir()
        os.replace(tmp, path)
    except Exception as exc:
        raise_os_error_inside(exc, path)
        raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


# the words an operating-system error keeps when a library re-raises it as its own type (Rust's
# io::Error in safetensors and tokenizers: "IoError(Os { code: 28, kind: StorageFull, ... })")
OS_ERROR_WORDS = {
    errno.ENOSPC: ("no space left on device", "storagefull", "os error 28", "code: 28"),
    errno.EDQUOT: ("disk quota exceeded", "quotaexceeded", "os error 122", "code: 122"),
    errno.EROFS: ("read-only file system", "readonlyfilesystem", "os error 30", "code: 30"),
    errno.EACCES: ("permission denied", "os error 13", "code: 13"),
}


def raise_os_error_inside(exc: BaseException, path: Path) -> None:
    """A library's own exception type that carries a full disk, a quota, a read-only or a
    forbidden folder becomes the ``OSError`` it is (a CLI prints one line for those); anything
    else is left to its caller."""
    if isinstance(exc, (OSError, UserError)) or not isinstance(exc, Exception):
        return
    text = str(exc).lower()
    for code, words in OS_ERROR_WORDS.items():
        if any(w in text for w in words):
            raise OSError(code, os.strerror(code), str(path)) from exc


def stale_temporaries(folder: str | Path, names: tuple[str, ...]) -> list[Path]:
    """Temporaries that ``atomic_path`` left for ``names`` in ``folder`` when killed mid-write."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for name in names for p in folder.glob(f".{name}.*.tmp"))


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w", **kwargs: Any) -> Iterator[IO]:
    with atomic_path(path) as tmp, open(tmp, mode, **kwargs) as fh:
        yield fh


def write_json(path: str | Path, obj: Any) -> None:
    """Strict JSON (non-finite floats become null, never the invalid ``NaN``)."""
    with atomic_open(path, "w", encoding="utf-8") as fh:
        json.dump(to_jsonable(obj), fh, indent=2, sort_keys=False, allow_nan=False)
        fh.write("\n")


def write_text(path: str | Path, text: str) -> None:
    with atomic_open(path, "w", encoding="utf-8") as fh:
        fh.write(text)


def to_jsonable(obj: Any) -> Any:
    """Dataclasses, paths and tuples as plain JSON values; NaN and infinities as None (null).

    Strict JSON has no NaN: ``json.dumps(float("nan"))`` writes ``NaN``, which other parsers reject.
    """
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj
