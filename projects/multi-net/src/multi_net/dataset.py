"""MSR-VTT on disk: where the videos and annotations are, downloads, and the standard splits."""

from __future__ import annotations

import json
import logging
import random
from dataclasses import dataclass
from pathlib import Path

from multi_net.annotations import Annotations, find_annotation_files, load_annotations
from multi_net.features import video_files
from shared.download import extract, fetch, file_sha256
from shared.errors import UserError
from shared.files import data_root, write_json
from shared.progress import warn

log = logging.getLogger(__name__)

# Frozen-in-Time's copy (videos/all/*.mp4 + annotation/MSR_VTT.json) and CLIP4Clip's split files.
VIDEO_ARCHIVE_URLS = ["https://www.robots.ox.ac.uk/~maxbain/frozen-in-time/data/MSRVTT.zip"]
SPLIT_ARCHIVE_URLS = [
    "https://github.com/ArrowLuo/CLIP4Clip/releases/download/v0.0/msrvtt_data.zip"
]


def msrvtt_root(data_dir: Path | None) -> Path:
    return data_root(data_dir) / "msrvtt"


def download_msrvtt(data_dir: Path | None, quiet: bool = False) -> Path:
    """Fetch and unpack both archives; their sha256 sums are recorded on first download."""
    root = msrvtt_root(data_dir)  # made by the first download that succeeds, not before
    sums_path = root / "checksums.json"
    sums = json.loads(sums_path.read_text()) if sums_path.is_file() else {}
    for name, urls in (("MSRVTT.zip", VIDEO_ARCHIVE_URLS), ("msrvtt_data.zip", SPLIT_ARCHIVE_URLS)):
        archive = fetch(
            urls,
            root / name,
            sums.get(name),
            quiet=quiet,
            hint="pass --videos DIR --annotations FILE (your own videos, or 'multi-net data synth')",
        )
        if name not in sums:
            sums[name] = file_sha256(archive)
            write_json(sums_path, sums)
        extract(archive, root / name.removesuffix(".zip"), quiet=quiet)
    return root


def find_videos_dir(root: Path) -> Path | None:
    for sub in ("videos", "MSRVTT/videos/all", "videos/all", "MSRVTT_Videos", ""):
        folder = root / sub
        if folder.is_dir() and any(p.suffix == ".mp4" for p in folder.iterdir()):
            return folder
    return None


@dataclass
class MsrVtt:
    videos: dict[str, Path]  # video id -> file
    ann: Annotations


def locate(
    videos: Path | None,
    annotations: list[Path],
    data_dir: Path | None,
    *,
    download: bool,
    quiet: bool = False,
    train_split: str = "9k",
) -> MsrVtt:
    if videos is None or not annotations:  # (your own videos and captions need no data root)
        root = msrvtt_root(data_dir)
    if videos is None:
        videos = find_videos_dir(root) or find_videos_dir(root / "MSRVTT")
        if videos is None and download:
            download_msrvtt(data_dir, quiet)
            videos = find_videos_dir(root / "MSRVTT") or find_videos_dir(root)
        if videos is None:
            raise UserError(
                f"no MSR-VTT videos under {root}: run 'multi-net data download' or pass --videos DIR"
            )
    split = train_split if train_split in ("9k", "7k") else "9k"
    files = annotations or [
        f for sub in ("", "MSRVTT", "msrvtt_data") for f in find_annotation_files(root / sub, split)
    ]
    if not files:
        raise UserError(f"no MSR-VTT annotation files under {root}: pass --annotations FILE ...")
    found = video_files(Path(videos))
    return MsrVtt(found, matched(load_annotations(list(dict.fromkeys(files))), found))


def matched(ann: Annotations, videos: dict[str, Path]) -> Annotations:
    """Captions named by a path (``clips/cat01``) moved to the id of the video on disk with that
    name (``cat01``), where the path itself is not an id."""
    for vid in [v for v in ann.captions if v not in videos and "/" in v]:
        name = vid.rsplit("/", 1)[1]
        if name in videos:
            ann.captions.setdefault(name, []).extend(ann.captions.pop(vid))
    return ann


def coverage(data: MsrVtt, quiet: bool = False) -> None:
    """Say which captioned videos are missing from disk and which videos on disk have no captions
    (indexed, never trained on); refuse annotations that name none of the videos on disk."""
    captioned = {v for v, caps in data.ann.captions.items() if caps}
    missing = captioned - set(data.videos)
    if captioned and missing == captioned:
        shown = ", ".join(sorted(missing)[:3])
        raise UserError(
            f"none of the {len(captioned)} captioned videos ({shown}, ...) is in the video "
            "folder: check --videos and the CSV's video column (file names, with or without "
            "their extension)"
        )
    if missing:
        warn(f"{len(missing)} captioned video(s) are not in the video folder: left out")
    silent = len(set(data.videos) - captioned)
    if silent:
        log.info(f"{silent} video(s) have no captions: indexed, not trained on")


@dataclass
class Splits:
    """Training videos, and (video id, caption) pairs to validate on and to test on.

    ``val`` chooses ``best.pt``; ``test`` is scored once, at the end, and never chooses anything.
    Either may be empty on a small set (with a warning naming what is missing).
    """

    train: list[str]
    val: list[tuple[str, str]]
    test: list[tuple[str, str]]


def _first_caption_pairs(ann: Annotations, ids, have: set[str]) -> list[tuple[str, str]]:
    return [(v, ann.captions[v][0]) for v in ids if v in have and ann.captions.get(v)]


def standard_split(data: MsrVtt, train_split: str, seed: int, val_videos: int = 500) -> Splits:
    """The splits among the videos on disk. Test: the 1k-A pairs when known, else the annotated
    test split, else 10% of the captioned videos. Validation: the annotated val split (the
    official ``validate`` one), else ``val_videos`` training videos (10% of a small set), carved
    out before training. Test and validation videos never train."""
    ann, have = data.ann, set(data.videos)
    if ann.test_pairs:
        test = [(v, c) for v, c in ann.test_pairs if v in have]
    elif "test" in ann.splits:
        test = _first_caption_pairs(ann, ann.splits["test"], have)
    else:
        pool = sorted(v for v in have if ann.captions.get(v))
        random.Random(seed).shuffle(pool)
        test = [(v, ann.captions[v][0]) for v in pool[: max(1, len(pool) // 10)]]
    held = {v for v, _ in test}
    if train_split in ("official", "9k", "7k") and "train" in ann.splits:
        train = ann.splits["train"]
    else:
        train = sorted(ann.captions)
    train = [v for v in dict.fromkeys(train) if v in have and v not in held and ann.captions.get(v)]
    if "val" in ann.splits:
        val = _first_caption_pairs(ann, ann.splits["val"], have - held)
        chosen = {v for v, _ in val}
        train = [v for v in train if v not in chosen]
    else:
        n = min(val_videos, round(0.1 * len(train)))
        n = n if n >= 2 and len(train) - n >= 2 else 0
        pool = list(train)
        random.Random(seed + 1).shuffle(pool)
        chosen = set(pool[:n])
        val = _first_caption_pairs(ann, [v for v in train if v in chosen], have)
        train = [v for v in train if v not in chosen]
    return Splits(train, val, test)


def check_splits(s: Splits) -> None:
    """Refuse what cannot train; warn about what cannot be measured."""
    if len(s.train) < 2:
        raise UserError(
            f"{len(s.train)} captioned training video(s) found beside the annotations: "
            "contrastive training needs at least 2 (plus 2 for validation and 2 for test "
            "to measure anything)"
        )
    if len({v for v, _ in s.val}) < 2:
        warn(
            "fewer than 2 validation videos: no validation; the result is the last epoch's model (last.pt)"
        )
    if len({v for v, _ in s.test}) < 2:
        warn("fewer than 2 test videos: the model is trained but not tested (no test_* metrics)")
