"""The Austen corpus: the eight works from Project Gutenberg, stripped of boilerplate, split.

Text keeps its paragraphs and line breaks: nothing here deletes a newline (the original cleaner did,
and glued words together: "wasalmost"). Validation is the last 10% of each work, cut at a paragraph
boundary, so every work is represented and no validation text is seen in training.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import logging
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from shared.download import fetch, file_sha256
from shared.errors import UserError
from shared.files import data_root, write_json
from shared.progress import warn

log = logging.getLogger(__name__)

# Gutenberg id -> (title, slug)
WORKS: dict[int, tuple[str, str]] = {
    1342: ("Pride and Prejudice", "pride-and-prejudice"),
    158: ("Emma", "emma"),
    105: ("Persuasion", "persuasion"),
    161: ("Sense and Sensibility", "sense-and-sensibility"),
    141: ("Mansfield Park", "mansfield-park"),
    121: ("Northanger Abbey", "northanger-abbey"),
    946: ("Lady Susan", "lady-susan"),
    1212: ("Love and Freindship", "love-and-freindship"),
}


# sha256 of each work's BODY (the text between Gutenberg's START and END markers, LF line ends, as
# `strip_gutenberg` returns it), pinned from verified copies. Gutenberg rewrites headers and licence
# footers over the years, so a digest of the whole file would break; the body is the edition. A
# download whose body differs is refused. Works 946 and 1212 are not pinned: their whole-file sum
# is recorded on first download (data root's austen/checksums.json) and checked after.
BODY_SHA256: dict[int, str] = {
    105: "363b7657367596bb3bab9cf4a5878422d3104832418c540d38d545279ad8d66b",
    121: "90b5c714851bd45957871b9efe30ccfb0c7df0acc9a73c4eb7735aadbc89711c",
    141: "8212be72ddc6bf31a30a344b77b6508d3e76a62a9708af192ea76b19c778f23c",
    158: "b8e7f0ec800b4fb38c7f080112fe937c2675025c2baac2d805b2511572073705",
    161: "4580a4a8a5814b20909e9eaf542fc62cdebc4f6dc1e7f6659e3a41d5397bb5c2",
    1342: "e3bb81d19b34dd917187e2836340b02dceb3dc751e18308092a0074bbb2118ab",
}


def body_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def check_body(path: Path, work_id: int) -> None:
    """Refuse (and delete) a downloaded work whose body is not the pinned edition."""
    pinned = BODY_SHA256.get(work_id)
    if pinned is None:
        return
    got = body_sha256(strip_gutenberg(decode_bytes(path.read_bytes(), str(path))))
    if got != pinned:
        path.unlink(missing_ok=True)
        raise UserError(
            f"the downloaded text of {WORKS[work_id][0]} (Gutenberg {work_id}) is not the pinned "
            f"edition (body sha256 {got[:12]}..., expected {pinned[:12]}...); it was removed. "
            "Place a copy you trust in a folder and pass --corpus-dir"
        )


def gutenberg_urls(work_id: int) -> list[str]:
    return [
        f"https://www.gutenberg.org/cache/epub/{work_id}/pg{work_id}.txt",
        f"https://www.gutenberg.org/ebooks/{work_id}.txt.utf-8",
        f"https://gutenberg.pglaf.org/cache/epub/{work_id}/pg{work_id}.txt",
    ]


@dataclass
class Work:
    work_id: int
    title: str
    text: str  # stripped of Gutenberg boilerplate, LF line ends


# --- reading and stripping -------------------------------------------------------------------

START = re.compile(r"^\*{3}\s*START OF (?:THE|THIS) PROJECT GUTENBERG E-?BOOK.*$", re.I | re.M)
END = re.compile(r"^\*{3}\s*END OF (?:THE|THIS) PROJECT GUTENBERG E-?BOOK.*$", re.I | re.M)
# Older files: a closing line before the licence instead of (or besides) the *** END marker.
OLD_END = re.compile(r"^\s*End of (?:the |this )?Project Gutenberg'?s? .*$", re.I | re.M)
OLD_START = re.compile(r"^\*END\*THE SMALL PRINT!.*$", re.M)


# byte-order marks, longest first (UTF-32's little-endian one begins with UTF-16's)
BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def decode_bytes(raw: bytes, name: str = "text") -> str:
    """UTF-8 (a BOM is dropped); UTF-16 or UTF-32 when a BOM says so (Windows' "Unicode" text);
    otherwise cp1252 with a warning. CRLF and CR become LF."""
    encoding = next((enc for bom, enc in BOMS if raw.startswith(bom)), None)
    try:
        text = raw.decode(encoding or "utf-8-sig")
    except UnicodeDecodeError:
        if encoding is not None:
            raise UserError(
                f"{name} starts with a {encoding.upper()} mark but is not {encoding}"
            ) from None
        warn(f"{name} is not valid UTF-8: reading it as cp1252")
        text = raw.decode("cp1252", errors="replace")
    if "\x00" in text:
        raise UserError(f"{name} is not a text file (it holds NUL bytes)")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def strip_gutenberg(text: str, markers_only: bool = False) -> str:
    """The body between the START and END markers (old and new headers, licence footer removed).
    ``markers_only``: touch nothing but what the markers delimit (a user's own text)."""
    start = START.search(text) or OLD_START.search(text)
    if start:
        text = text[start.end() :]
    elif text.lstrip().startswith("Title:") and not markers_only:
        # New-style header without a marker: metadata lines up to the first blank-line gap.
        parts = text.split("\n\n\n", 1)
        text = parts[1] if len(parts) == 2 else text
    end = END.search(text)
    if end:
        text = text[: end.start()]
    old_end = None if markers_only and not start else OLD_END.search(text)
    if old_end:
        text = text[: old_end.start()]
    return text.strip("\n") + "\n"


def read_work(path: Path, work_id: int) -> Work:
    raw = path.read_bytes()
    if not raw.strip():
        raise UserError(f"{path} is empty")
    text = strip_gutenberg(decode_bytes(raw, str(path)))
    title = WORKS.get(work_id, (path.stem, ""))[0]
    return Work(work_id, title, text)


# --- finding and downloading -----------------------------------------------------------------

CORPUS_HINT = "pass --corpus-dir DIR (or --data-dir DIR), a folder holding pg<id>.txt files"
FILE_NAME = re.compile(r"^(?:pg(?P<a>\d+)|(?P<b>\d+)-[\w-]+)\.txt$")


def find_local(folder: Path) -> dict[int, Path]:
    """The Austen works in ``folder``, named ``pg<id>.txt`` or ``<id>-<slug>.txt``."""
    found = {}
    for path in sorted(folder.iterdir()):
        m = FILE_NAME.match(path.name)
        if m and path.is_file():
            work_id = int(m.group("a") or m.group("b"))
            if work_id in WORKS:
                found[work_id] = path
    return found


def download_works(root: Path, ids: list[int], quiet: bool = False) -> dict[int, Path]:
    """Download into ``root/austen``. Six works are checked against pinned body digests; every
    file's sha256 is also recorded on first download and checked after."""
    folder = root / "austen"  # made by the first download that succeeds, not before
    sums_path = folder / "checksums.json"
    sums = json.loads(sums_path.read_text()) if sums_path.is_file() else {}
    paths = {}
    for work_id in ids:
        dest = folder / f"pg{work_id}.txt"
        paths[work_id] = fetch(
            gutenberg_urls(work_id), dest, sums.get(str(work_id)), quiet=quiet, hint=CORPUS_HINT
        )
        check_body(dest, work_id)
        if str(work_id) not in sums:
            sums[str(work_id)] = file_sha256(dest)
            write_json(sums_path, sums)
    return paths


def load_corpus(
    corpus_dir: Path | None, data_dir: Path | None, *, quiet: bool = False, download: bool = True
) -> list[Work]:
    """Local files from ``--corpus-dir``, else the data root's copies, downloading what is missing."""
    if corpus_dir is not None:
        if not corpus_dir.is_dir():
            raise UserError(f"--corpus-dir {corpus_dir} is not a folder")
        paths = find_local(corpus_dir)
        if not paths:
            raise UserError(
                f"--corpus-dir {corpus_dir} holds none of the Austen works; expected files named "
                f"pg<id>.txt or <id>-<slug>.txt with ids {', '.join(map(str, WORKS))}"
            )
    elif data_dir is not None and Path(data_dir).is_dir() and find_local(Path(data_dir)):
        paths = find_local(Path(data_dir))  # --data-dir names the folder holding the works
    else:
        root = data_root(data_dir)
        local = find_local(root / "austen") if (root / "austen").is_dir() else {}
        missing = [i for i in WORKS if i not in local]
        if missing and download:
            local.update(download_works(root, missing, quiet))
        elif missing and not local:
            raise UserError(
                f"no Austen texts in {root / 'austen'}: run 'austen-net data download', or "
                f"{CORPUS_HINT}"
            )
        paths = local
    works = [read_work(paths[i], i) for i in WORKS if i in paths]
    log.info(f"corpus: {len(works)} works, {sum(len(w.text) for w in works):,} characters")
    return works


# --- a user's own text -----------------------------------------------------------------------

TEXT_SUFFIXES = (".txt",)


def text_files(paths: list[Path]) -> list[Path]:
    """The files named, and the ``.txt`` files under the folders named (recursively, sorted).
    Anything that is not a regular file (a device like /dev/zero, a FIFO, a socket) is refused
    when named, and skipped with a counted warning inside a folder: reading one never ends."""
    files: list[Path] = []
    for path in paths:
        path = Path(path)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix.lower() in TEXT_SUFFIXES)
            odd = [p for p in found if not p.is_file() and not p.is_dir()]
            found = [p for p in found if p.is_file()]
            if odd:
                warn(
                    f"--text {path}: skipped {len(odd)} .txt entr{'y' if len(odd) == 1 else 'ies'} "
                    f"that are not regular files (a FIFO, a device or a socket), e.g. {odd[0].name}"
                )
            if not found:
                raise UserError(f"--text {path}: the folder holds no .txt files")
            files += found
        elif path.is_file():
            files.append(path)
        elif path.exists():
            raise UserError(f"--text {path}: {file_kind(path)}, not a regular file")
        else:
            raise UserError(f"--text {path}: no such file or folder")
    unique: dict[Path, Path] = {}  # a file named twice (by any spelling, or a link) is read once
    for file in files:
        unique.setdefault(file.resolve(), file)
    return list(unique.values())


def file_kind(path: Path) -> str:
    mode = path.stat().st_mode
    for test, name in (
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a file or folder"


def load_text(paths: list[Path], quiet: bool = False) -> list[Work]:
    """A user's own text, one ``Work`` per file (numbered from 0, titled by file name). UTF-8, or
    cp1252 with a warning; Gutenberg headers stripped only where their markers are present."""
    works = []
    for i, path in enumerate(text_files(paths)):
        text = strip_gutenberg(decode_bytes(path.read_bytes(), str(path)), markers_only=True)
        if not text.strip():
            raise UserError(f"--text {path} holds no text")
        works.append(Work(i, path.name, text))
    log.info(
        f"text: {len(works)} file{'s' * (len(works) != 1)}, "
        f"{sum(len(w.text) for w in works):,} characters"
    )
    return works


def describe_text(paths: list[Path], works: list[Work]) -> dict:
    """What a run trained on, for its summary: the files, their characters and one sha256."""
    h = hashlib.sha256()
    for work in works:
        h.update(work.text.encode("utf-8"))
        h.update(b"\x00")
    return {
        "files": [str(p) for p in text_files(paths)],
        "characters": sum(len(w.text) for w in works),
        "sha256": h.hexdigest(),
    }


def training_works(
    text: list[Path],
    corpus_dir: Path | None,
    data_dir: Path | None,
    *,
    quiet: bool = False,
    download: bool = True,
) -> list[Work]:
    """The works a run trains on: the user's ``--text``, else the Austen corpus."""
    if text:
        if corpus_dir is not None:
            raise UserError("give --text or --corpus-dir, not both")
        return load_text(text, quiet)
    return load_corpus(corpus_dir, data_dir, quiet=quiet, download=download)


# --- splitting -------------------------------------------------------------------------------


def paragraph_cut(text: str, fraction: float) -> int:
    """The first paragraph boundary at or after ``fraction`` of the text; in a text whose end has
    none (one long paragraph), the first line break; in one line, the first space."""
    target = int(len(text) * fraction)
    for sep in ("\n\n", "\n", " "):
        cut = text.find(sep, target, len(text) - 1)
        if cut >= 0:
            return cut + len(sep)
    return len(text)


@dataclass
class Split:
    train: list[str]  # one string per work (or part of a work)
    val: list[str]

    @property
    def train_chars(self) -> int:
        return sum(map(len, self.train))

    @property
    def val_chars(self) -> int:
        return sum(map(len, self.val))


def split_corpus(
    works: list[Work], val_fraction: float = 0.1, holdout: tuple[int, ...] = ()
) -> Split:
    """Last ``val_fraction`` of each work is validation; held-out works are validation entirely."""
    unknown = [h for h in holdout if h not in {w.work_id for w in works}]
    if unknown:
        raise UserError(f"--holdout-works {unknown}: not in the corpus")
    train, val = [], []
    for work in works:
        if work.work_id in holdout:
            val.append(work.text)
            continue
        cut = paragraph_cut(work.text, 1 - val_fraction)
        train.append(work.text[:cut])
        if cut < len(work.text):
            val.append(work.text[cut:])
    if not train:
        raise UserError("every work is held out: nothing is left to train on")
    if not val:
        raise UserError(
            f"the validation split holds no text (too little text to keep its last "
            f"{val_fraction:.0%} apart): give more text or raise --val-fraction"
        )
    return Split(train, val)


SAMPLE_WORKS = (105, 121)  # Persuasion and Northanger Abbey: 1.3 MB, the shortest two


def validation_split_of(
    trained: dict,
    corpus_dir: Path | None = None,
    data_dir: Path | None = None,
    *,
    quiet: bool = True,
    download: bool = False,
    recorded: str | None = None,
) -> list[str]:
    """A run's validation texts, found again from its config ``trained`` and split as they were:
    its own text files, or the corpus under ``corpus_dir``/``data_dir``. A run whose own text is
    gone is refused; one whose text changed since training (``recorded``: its sha256) is warned
    about (its validation split moved)."""
    own = [Path(p) for p in trained.get("text") or []]
    if own:
        missing = [str(p) for p in own if not p.exists()]
        if missing:
            raise UserError(
                f"the run trained on text that is gone ({', '.join(missing)}): "
                "give --text FILE to score other text"
            )
        works = training_works(own, None, None, quiet=quiet)
        if recorded and recorded != describe_text(own, works)["sha256"]:
            warn("the run's text files changed since training: its validation split moved")
    else:
        works = training_works([], corpus_dir, data_dir, quiet=quiet, download=download)
    holdout = tuple(trained.get("holdout_works", ()))
    return split_corpus(works, trained.get("val_fraction", 0.1), holdout).val
