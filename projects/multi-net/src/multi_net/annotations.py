"""MSR-VTT annotations in every format people have, parsed into one shape.

Formats (detected from the content):
- official ``train_val_videodatainfo.json`` / ``test_videodatainfo.json``, CLIP4Clip's
  ``MSRVTT_data.json`` and Frozen-in-Time's ``MSR_VTT.json``: ``{"videos": [...], "sentences": [...]}``;
- CLIP4Clip split CSVs: ``MSRVTT_train.9k.csv`` / ``MSRVTT_train.7k.csv`` (one column ``video_id``) and
  ``MSRVTT_JSFUSION_test.csv`` (the 1k-A test split: ``key,vid_key,video_id,sentence``);
- a plain JSON list of ``{video_id, caption(s), category}`` records (e.g. ``msrvtt_test_1k.json``),
  optionally with each clip's ``split`` (train / val / test) and ``attributes`` (as
  ``multi-net data synth`` writes them).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

from shared.errors import UserError

CATEGORIES = (
    "music",
    "people",
    "gaming",
    "sports/actions",
    "news/events/politics",
    "education",
    "tv shows",
    "movie/comedy",
    "animation",
    "vehicles/autos",
    "howto",
    "travel",
    "science/technology",
    "animals/pets",
    "kids/family",
    "documentary",
    "food/drink",
    "cooking",
    "beauty/fashion",
    "advertisement",
)


@dataclass
class Annotations:
    captions: dict[str, list[str]] = field(default_factory=dict)  # video_id -> captions
    categories: dict[str, int] = field(default_factory=dict)  # video_id -> 0..19
    splits: dict[str, list[str]] = field(default_factory=dict)  # split name -> video ids
    test_pairs: list[tuple[str, str]] = field(default_factory=list)  # 1k-A (video_id, sentence)
    attributes: dict[str, dict] = field(default_factory=dict)  # video_id -> known attributes
    category_names: dict[int, str] = field(default_factory=dict)  # from records' category_name

    def merge(self, other: Annotations) -> Annotations:
        for vid, caps in other.captions.items():
            have = self.captions.setdefault(vid, [])
            have[:] = dict.fromkeys([*have, *caps])
        self.categories.update(other.categories)
        for name, ids in other.splits.items():
            self.splits[name] = list(dict.fromkeys(self.splits.get(name, []) + ids))
        self.test_pairs = self.test_pairs or other.test_pairs
        self.attributes.update(other.attributes)
        self.category_names.update(other.category_names)
        return self


def category_name(category: int | None, ann: Annotations) -> str | None:
    """A category as people read it: the annotations' own name for it (``category_name`` in
    records, e.g. the synthetic benchmark's shapes), else MSR-VTT's 20 names, else the number."""
    if category is None:
        return None
    if category in ann.category_names:
        return ann.category_names[category]
    if not ann.category_names and 0 <= category < len(CATEGORIES):
        return CATEGORIES[category]
    return str(category)


def _parse_official(data: dict) -> Annotations:
    ann = Annotations()
    for v in data.get("videos", []):
        vid = v["video_id"]
        if "category" in v:
            ann.categories[vid] = int(v["category"])
        if "split" in v:
            name = {"validate": "val"}.get(v["split"], v["split"])
            ann.splits.setdefault(name, []).append(vid)
    for s in data.get("sentences", []):
        ann.captions.setdefault(s["video_id"], []).append(s["caption"].strip())
    return ann


def _parse_records(records: list) -> Annotations:
    ann = Annotations()
    for r in records:
        if not isinstance(r, dict) or "video_id" not in r:
            raise ValueError("records need a video_id")
        vid = str(r["video_id"])
        caps = r.get("caption", r.get("captions", r.get("sentence", [])))
        for cap in [caps] if isinstance(caps, str) else caps:
            ann.captions.setdefault(vid, []).append(str(cap).strip())
        if "category" in r:
            ann.categories[vid] = int(r["category"])
            if isinstance(r.get("category_name"), str):
                ann.category_names[ann.categories[vid]] = r["category_name"]
        if "split" in r:
            name = {"validate": "val", "valid": "val"}.get(r["split"], r["split"])
            if name not in ("train", "val", "test"):
                raise ValueError(f"unknown split {r['split']!r} (train, val or test)")
            ann.splits.setdefault(name, []).append(vid)
        if isinstance(r.get("attributes"), dict):
            ann.attributes[vid] = dict(r["attributes"])
    return ann


VIDEO_COLUMNS = ("video", "video_id", "videoid", "path", "file")
CAPTION_COLUMNS = ("caption", "name", "text", "description")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".webm", ".mkv", ".mov")


def video_id(value: str) -> str:
    """A CSV's video cell as an id: ``clips/cat 01.mp4`` -> ``clips/cat 01`` (the folder is kept
    here; ``locate`` matches it to a file by its name where the folder differs)."""
    value = value.strip().replace("\\", "/")
    return value[: -len(Path(value).suffix)] if value.lower().endswith(VIDEO_EXTENSIONS) else value


def _parse_caption_csv(rows: list[dict], video: str, caption: str) -> Annotations:
    """A video-caption CSV (``video,caption``; WebVid's ``videoid,name``): several rows per video
    allowed, empty captions skipped."""
    captions: dict[str, dict[str, None]] = {}  # ordered sets: a million rows stay linear
    for row in rows:
        vid, text = video_id(row[video] or ""), (row[caption] or "").strip()
        if not vid:
            raise ValueError(f"a row without a {video}")
        have = captions.setdefault(vid, {})
        if text:
            have[text] = None
    return Annotations(captions={vid: list(caps) for vid, caps in captions.items()})


MAX_CSV_FIELD = 1 << 20  # a CSV cell over 1 MiB is refused (csv's own limit is 128 KiB)


def _parse_csv(path: Path) -> Annotations:
    previous = csv.field_size_limit(MAX_CSV_FIELD)
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:  # a BOM (Excel's UTF-8) is read
            rows = list(csv.DictReader(fh))
    except csv.Error as exc:
        if "field larger than field limit" not in str(exc):
            raise ValueError(f"not a CSV: {exc}") from None
        raise ValueError(
            f"a cell is over {MAX_CSV_FIELD // (1 << 20)} MiB, far longer than any caption (a "
            "quote left open, or not a caption file?)"
        ) from None
    finally:
        csv.field_size_limit(previous)
    if not rows:
        raise ValueError(
            "no rows below the header: a CSV needs a header with a video column and a caption "
            "column (video,caption)"
        )
    columns = {c.strip().lower(): c for c in rows[0] if c}
    video = next((columns[c] for c in VIDEO_COLUMNS if c in columns), None)
    caption = next((columns[c] for c in CAPTION_COLUMNS if c in columns), None)
    if video is not None and caption is not None:
        return _parse_caption_csv(rows, video, caption)
    if "video_id" not in rows[0]:
        raise ValueError(
            "a CSV needs a header with a video column and a caption column (video,caption), "
            "or MSR-VTT's video_id"
        )
    ann = Annotations()
    name = path.name.lower()
    if "sentence" in rows[0]:  # JSFusion 1k-A test pairs
        ann.test_pairs = [(r["video_id"], r["sentence"].strip()) for r in rows]
        ann.splits["test"] = [v for v, _ in ann.test_pairs]
        for vid, sentence in ann.test_pairs:
            ann.captions.setdefault(vid, []).append(sentence)
    else:
        split = (
            "train"
            if "train" in name
            else "val"
            if "val" in name
            else "test"
            if "test" in name
            else "train"
        )
        ann.splits[split] = [r["video_id"] for r in rows]
    return ann


def parse_annotations(path: str | Path) -> Annotations:
    """Parse one annotation file of any supported format."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"annotation file {path} does not exist")
    try:
        if path.suffix.lower() == ".csv":
            return _parse_csv(path)
        data = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(data, dict) and ("videos" in data or "sentences" in data):
            return _parse_official(data)
        if isinstance(data, list):
            return _parse_records(data)
        raise ValueError("unknown JSON layout")
    except (ValueError, KeyError, TypeError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path} is not an annotation file this program reads ({exc})") from exc


def load_annotations(paths: list[Path]) -> Annotations:
    ann = Annotations()
    for p in paths:
        ann.merge(parse_annotations(p))
    if not ann.captions and not ann.splits:
        raise UserError("the annotation files hold no captions and no splits")
    return ann


def find_annotation_files(folder: Path, train_split: str = "9k") -> list[Path]:
    """The annotation files of the usual names in ``folder`` (or its ``annotations/``), with the
    CLIP4Clip training list of ``train_split`` (9k or 7k)."""
    names = (
        "MSRVTT_data.json",
        "train_val_videodatainfo.json",
        "test_videodatainfo.json",
        "MSR_VTT.json",
        f"MSRVTT_train.{'7k' if train_split == '7k' else '9k'}.csv",
        "MSRVTT_JSFUSION_test.csv",
        "msrvtt_test_1k.json",
    )
    found = []
    for sub in ("", "annotations", "annotation", "msrvtt_data"):
        for name in names:
            if (folder / sub / name).is_file():
                found.append(folder / sub / name)
    return found
