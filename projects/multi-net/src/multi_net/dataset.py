"""MSR-VTT on disk: where the videos and annotations are, downloads, and the standard splits."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from multi_net.annotations import Annotations, find_annotation_files, load_annotations
from multi_net.features import video_files
from shared.atomic import write_json
from shared.config import UserError
from shared.download import data_root, extract, fetch, file_sha256

# Frozen-in-Time's copy (videos/all/*.mp4 + annotation/MSR_VTT.json) and CLIP4Clip's split files.
VIDEO_ARCHIVE_URLS = ["https://www.robots.ox.ac.uk/~maxbain/frozen-in-time/data/MSRVTT.zip"]
SPLIT_ARCHIVE_URLS = [
    "https://github.com/ArrowLuo/CLIP4Clip/releases/download/v0.0/msrvtt_data.zip"
]


def msrvtt_root(data_dir: Path | None) -> Path:
    return data_root(data_dir) / "msrvtt"


def download_msrvtt(data_dir: Path | None, quiet: bool = False) -> Path:
    """Fetch and unpack both archives; their sha256 sums are recorded on first download."""
    root = msrvtt_root(data_dir)
    root.mkdir(parents=True, exist_ok=True)
    sums_path = root / "checksums.json"
    sums = json.loads(sums_path.read_text()) if sums_path.is_file() else {}
    for name, urls in (("MSRVTT.zip", VIDEO_ARCHIVE_URLS), ("msrvtt_data.zip", SPLIT_ARCHIVE_URLS)):
        archive = fetch(urls, root / name, sums.get(name), quiet=quiet)
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
    return MsrVtt(video_files(Path(videos)), load_annotations(list(dict.fromkeys(files))))


def standard_split(
    data: MsrVtt, train_split: str, seed: int
) -> tuple[list[str], list[tuple[str, str]]]:
    """(training video ids, test (video id, caption) pairs) among the videos on disk.

    Test is the 1k-A split when its pairs are known, else the official test split, else 10% of the
    captioned videos. Test videos never train.
    """
    ann, have = data.ann, set(data.videos)
    if ann.test_pairs:
        test = [(v, c) for v, c in ann.test_pairs if v in have]
    elif "test" in ann.splits:
        test = [
            (v, ann.captions[v][0]) for v in ann.splits["test"] if v in have and ann.captions.get(v)
        ]
    else:
        pool = sorted(v for v in have if ann.captions.get(v))
        random.Random(seed).shuffle(pool)
        test = [(v, ann.captions[v][0]) for v in pool[: max(1, len(pool) // 10)]]
    test_ids = {v for v, _ in test}
    if (
        train_split == "official"
        and "train" in ann.splits
        or train_split in ("9k", "7k")
        and "train" in ann.splits
    ):
        train = ann.splits["train"]
    else:
        train = sorted(ann.captions)
    train = [
        v for v in dict.fromkeys(train) if v in have and v not in test_ids and ann.captions.get(v)
    ]
    return train, test
