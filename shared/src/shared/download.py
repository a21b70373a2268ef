"""The data root, downloads verified by sha256 (through pooch), and archive extraction.

Offline or on a checksum mismatch, ``fetch`` stops with one message naming the URL, the expected
path and how to place the file by hand; nothing half-downloaded is left behind (pooch downloads to
a temporary file and moves it into place only after the hash matched).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import pooch
import requests

from shared.config import UserError
from shared.progress import bars_enabled, info

pooch.get_logger().setLevel(logging.WARNING)


def repo_root(start: Path | None = None) -> Path | None:
    """The nearest folder at or above ``start`` (default: cwd) holding a ``uv.lock``."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "uv.lock").is_file():
            return folder
    return None


def data_root(data_dir: str | Path | None = None) -> Path:
    """``--data-dir``, else ``$DL_DATA_DIR``, else ``<repo>/data`` (git-ignored), else ``./data``."""
    if data_dir is not None:
        return Path(data_dir)
    env = os.environ.get("DL_DATA_DIR")
    if env:
        return Path(env)
    root = repo_root()
    return (root if root is not None else Path.cwd()) / "data"


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


class DownloadError(UserError):
    """A download that could not be completed (offline, HTTP error, checksum mismatch)."""


def _by_hand(urls: Sequence[str], dest: Path, sha256: str | None) -> str:
    check = f" (sha256 {sha256})" if sha256 else ""
    return (
        f"\n  expected file: {dest}{check}"
        f"\n  download it by hand from {urls[0]} and place it there, or point --data-dir at a folder holding it"
    )


def fetch(
    urls: str | Sequence[str],
    dest: str | Path,
    sha256: str | None = None,
    *,
    quiet: bool = False,
    timeout: float = 60.0,
) -> Path:
    """Download ``dest`` from the first URL that works and verify its sha256 (when given).

    An existing file with the right hash is reused without touching the network.
    """
    urls = [urls] if isinstance(urls, str) else list(urls)
    dest = Path(dest)
    if dest.is_file():
        if sha256 is None or file_sha256(dest) == sha256:
            return dest
        raise DownloadError(
            f"{dest} exists but its sha256 is {file_sha256(dest)}, expected {sha256}: "
            "delete it to download again, or replace it with the right file"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    errors = []
    for url in urls:
        info(f"downloading {url} -> {dest}", quiet)
        downloader = pooch.HTTPDownloader(progressbar=bars_enabled(quiet), timeout=timeout)
        try:
            pooch.retrieve(
                url,
                known_hash=f"sha256:{sha256}" if sha256 else None,
                fname=dest.name,
                path=dest.parent,
                downloader=downloader,
            )
            return dest
        except ValueError as exc:  # pooch's hash mismatch (the temporary file is already removed)
            raise DownloadError(
                f"checksum mismatch for {url}: {exc}".strip() + _by_hand(urls, dest, sha256)
            ) from exc
        except (requests.RequestException, OSError) as exc:
            errors.append(f"{url}: {exc.__class__.__name__}: {str(exc)[:200]}")
    raise DownloadError(
        "could not download (offline, or the server refused):\n  "
        + "\n  ".join(errors)
        + _by_hand(urls, dest, sha256)
    )


def extract(archive: str | Path, into: str | Path, *, quiet: bool = False) -> Path:
    """Unpack a zip/tar archive into ``into`` once (atomically: unpack beside, then rename)."""
    archive, into = Path(archive), Path(into)
    if into.is_dir() and any(into.iterdir()):
        return into
    into.parent.mkdir(parents=True, exist_ok=True)
    info(f"extracting {archive.name} -> {into}", quiet)
    tmp = Path(tempfile.mkdtemp(prefix=f".{into.name}.", dir=into.parent))
    try:
        shutil.unpack_archive(str(archive), str(tmp))
        if into.exists():
            into.rmdir()
        os.replace(tmp, into)
    except (shutil.ReadError, OSError, EOFError) as exc:
        raise UserError(
            f"could not extract {archive}: {exc}; delete it and download again"
        ) from exc
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return into
