"""Atomic file writes: write to a temporary name beside the target, then ``os.replace``; and the
strict JSON values (no NaN) that config.json and summary.json hold (``to_jsonable``).

A crash or Ctrl-C mid-write leaves the previous file intact and no half-written one behind. The
temporary file is created private (``mkstemp``: mode 0600); it gets the mode a plain ``open`` would
have given it (0666 less the umask) before it takes the target's name, so teammates and web
servers can read run folders as the umask allows.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from shared.errors import UserError


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
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, default_mode())
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
