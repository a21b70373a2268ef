"""The data root, downloads verified by sha256 (through pooch), and archive extraction.

Offline or on a checksum mismatch, ``fetch`` stops with one message naming the URL, the expected
path and how to place the file by hand; nothing half-downloaded is left behind (pooch downloads to
a temporary file and moves it into place only after the hash matched).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tarfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

import pooch
import requests

from shared.errors import UserError
from shared.files import atomic_dir
from shared.progress import bars_enabled

log = logging.getLogger(__name__)

pooch.get_logger().setLevel(logging.WARNING)


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


class DownloadError(UserError):
    """A download that could not be completed (offline, HTTP error, checksum mismatch)."""


def _by_hand(urls: Sequence[str], dest: Path, sha256: str | None, hint: str | None) -> str:
    check = f" (sha256 {sha256})" if sha256 else ""
    return (
        f"\n  expected file: {dest}{check}"
        f"\n  download it by hand from {urls[0]} and place it there"
        + (f", or {hint}" if hint else "")
    )


def why_failed(exc: BaseException) -> str:
    """Why a download failed, in a few plain words: "no network (raw.githubusercontent.com could
    not be resolved)", "timed out", "HTTP 404". Reads the whole chain of causes (torchvision's
    message ends at "Error downloading X:", the reason is the exception it chains to)."""
    chain, seen = [], set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__
    text = " ".join(" ".join(str(e).split()) for e in chain)
    host = re.search(r"host='([^']+)'", text)
    where = f" ({host.group(1)} could not be resolved)" if host else ""
    for e in chain:
        if isinstance(e, requests.HTTPError) and e.response is not None:
            return f"HTTP {e.response.status_code} {e.response.reason or ''}".strip()
        if isinstance(e, requests.Timeout | TimeoutError):
            return "timed out"
    if re.search(r"NameResolution|Name or service not known|name resolution|getaddrinfo", text):
        return "no network" + where
    if re.search(r"Connection refused|Network is unreachable", text):
        return "no network (connection refused)"
    if re.search(r"SSL|CERTIFICATE", text):
        return "a TLS error (a proxy in the way?)"
    last = chain[-1]
    words = " ".join(str(last).split())
    if len(words) > 120:
        words = words[:120].rsplit(" ", 1)[0] + " ..."
    return f"{last.__class__.__name__}: {words}" if words else last.__class__.__name__


def missing_folders(path: Path) -> list[Path]:
    """The folders at and above ``path`` that do not exist yet, deepest first."""
    out = []
    while not path.exists() and path != path.parent:
        out.append(path)
        path = path.parent
    return out


def remove_if_empty(folders: Sequence[Path]) -> None:
    """Remove the folders a failed download created, deepest first, while they are empty."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return


def fetch(
    urls: str | Sequence[str],
    dest: str | Path,
    sha256: str | None = None,
    *,
    quiet: bool = False,
    timeout: float = 60.0,
    hint: str | None = None,
) -> Path:
    """Download ``dest`` from the first URL that works and verify its sha256 (when given).

    An existing file with the right hash is reused without touching the network. ``hint``: how
    else to give the file (e.g. "pass --data FILE"), added to the message when the download fails.
    A failed download leaves no folder it created behind.
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
    created = missing_folders(dest.parent)
    try:
        return _download(urls, dest, sha256, quiet, timeout, hint)
    except BaseException:
        remove_if_empty(created)
        raise


def offline() -> bool:
    """``$DL_OFFLINE`` set (to anything but "" or "0"): no download is attempted, as with
    ``HF_HUB_OFFLINE`` (a test of the offline path, a machine that must not reach the network)."""
    return os.environ.get("DL_OFFLINE", "") not in ("", "0")


def _download(urls, dest: Path, sha256, quiet: bool, timeout: float, hint) -> Path:
    if offline():
        raise DownloadError(
            "not downloading: $DL_OFFLINE is set" + _by_hand(urls, dest, sha256, hint)
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    errors = []
    for url in urls:
        log.info(f"downloading {url} -> {dest}")
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
                f"checksum mismatch for {url}: {exc}".strip() + _by_hand(urls, dest, sha256, hint)
            ) from exc
        except (requests.RequestException, OSError) as exc:
            errors.append(f"{url}: {why_failed(exc)}")
    raise DownloadError(
        "could not download:\n  " + "\n  ".join(errors) + _by_hand(urls, dest, sha256, hint)
    )


def unpack(archive: Path, into: Path) -> None:
    """Unpack a zip or tar archive into ``into`` without letting any member out of it.

    tar: the ``data`` filter refuses absolute paths, ``..``, links that point outside, devices,
    and drops set-uid bits. zip: every member's resolved path must stay inside ``into``.
    """
    if tarfile.is_tarfile(archive):
        if not hasattr(tarfile, "data_filter"):  # Python < 3.11.4
            raise UserError("extracting tar archives safely needs Python 3.11.4 or newer")
        with tarfile.open(archive) as tar:
            tar.extractall(into, filter="data")
        return
    if not zipfile.is_zipfile(archive):
        raise UserError(f"{archive} is neither a zip nor a tar archive")
    root = into.resolve()
    with zipfile.ZipFile(archive) as zf:
        for member in zf.namelist():
            target = (root / member).resolve()
            if target != root and root not in target.parents:
                raise UserError(f"{archive}: member {member!r} would be written outside {into}")
        zf.extractall(into)


def extract(archive: str | Path, into: str | Path, *, quiet: bool = False) -> Path:
    """Unpack a zip/tar archive into ``into`` once (atomically: unpack beside, then rename)."""
    archive, into = Path(archive), Path(into)
    if into.is_dir() and any(into.iterdir()):
        return into
    log.info(f"extracting {archive.name} -> {into}")
    try:
        with atomic_dir(into) as tmp:
            unpack(archive, tmp)
    except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError) as exc:
        raise UserError(
            f"could not extract {archive}: {exc}; delete it and download again"
        ) from exc
    return into
