"""Labelled audio on disk: a folder of label folders (GTZAN or your own), split by clip.

Any ``DIR/<label>/*.{wav,flac,ogg,mp3,au}`` is a data set: the labels are the subfolder names,
sorted (as torchvision's ImageFolder does), and travel inside the checkpoint. GTZAN is the default
and is one such folder; its two layouts are found from their parents too: Kaggle's
``Data/genres_original/<genre>/<genre>.000NN.wav`` and the original ``genres/<genre>/*.au``.
The split is by CLIP (stratified by label, seeded), so the windows of one clip never straddle
train/val/test and augmentation never reaches evaluation data.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from audio_net.sample import write_sample
from shared.download import extract, fetch
from shared.errors import UserError
from shared.files import data_root
from shared.text import name_some

log = logging.getLogger(__name__)

GENRES = (
    "blues",
    "classical",
    "country",
    "disco",
    "hiphop",
    "jazz",
    "metal",
    "pop",
    "reggae",
    "rock",
)
AUDIO_SUFFIXES = {".wav", ".au", ".flac", ".ogg", ".mp3"}

ARCHIVE_URLS = [
    "https://huggingface.co/datasets/marsyas/gtzan/resolve/main/data/genres.tar.gz",
    "https://web.archive.org/web/20220328223413/http://opihi.cs.uvic.ca/sound/genres.tar.gz",
    "http://opihi.cs.uvic.ca/sound/genres.tar.gz",
]
# sha256 of the original genres.tar.gz (the same sum torchaudio's GTZAN dataset checks)
ARCHIVE_SHA256 = "24347e0223d2ba798e0a558c4c172d9d4a19c00bb7963fe055d183dadb4ef2c6"


@dataclass(frozen=True)
class Clip:
    path: Path
    label_id: int  # the label's index among the data set's sorted labels
    label: str = ""  # the label folder's name
    key: str = ""  # the clip's name where file names repeat across labels ("dog/001")

    @property
    def name(self) -> str:
        return self.key or self.path.stem  # e.g. "blues.00042"


def some_labels(names: list[str]) -> str:
    """Labels named in a one-line message: all of a few, or the first five and the count."""
    return name_some(names) + (f" ({len(names)} labels)" if len(names) > 5 else "")


def labels_of(clips: list[Clip]) -> list[str]:
    """The data set's labels, in index order."""
    return sorted({c.label for c in clips})


def audio_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())


def label_folders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith((".", "__")))


def is_label_root(folder: Path) -> bool:
    """A folder of label folders: some subfolder holds audio files directly."""
    return folder.is_dir() and any(audio_files(f) for f in label_folders(folder))


def genre_root(folder: Path) -> Path | None:
    """The folder of label folders at ``folder``, or GTZAN's just below it."""
    for candidate in (
        folder,
        folder / "genres_original",
        folder / "genres",
        folder / "gtzan" / "genres_original",
        folder / "gtzan" / "genres",
        folder / "Data" / "genres_original",
    ):
        if is_label_root(candidate):
            return candidate
    return None


def list_clips(root: Path) -> list[Clip]:
    """Every clip under ``root/<label>/``: labels are the sorted subfolder names; a label folder
    without audio is refused (a typo or a copy that failed), as is a single label."""
    folders = label_folders(root)
    empty = [f.name for f in folders if not audio_files(f)]
    if empty:
        raise UserError(
            f"label folder(s) {some_labels(empty)} in {root} hold no audio files "
            f"({', '.join(sorted(AUDIO_SUFFIXES))}): add clips or remove the folder(s)"
        )
    if len(folders) < 2:
        raise UserError(
            f"{root} has one label folder ({folders[0].name}); a classifier needs at least 2: "
            "DIR/<label>/<clip>.wav, one folder per label"
        )
    files = [(i, f.name, p) for i, f in enumerate(folders) for p in audio_files(f)]
    stems = [p.stem for _, _, p in files]
    repeated = {s for s in stems if stems.count(s) > 1} if len(set(stems)) < len(stems) else set()
    return [
        Clip(p, i, label, f"{label}/{p.stem}" if p.stem in repeated else "")
        for i, label, p in files
    ]


def find_gtzan(data_dir: Path | None, *, download: bool = True, quiet: bool = False) -> list[Clip]:
    """Clips under ``--data-dir`` (or the data root's ``gtzan/``), downloading the archive if asked."""
    if data_dir is not None:
        root = genre_root(Path(data_dir))
        if root is not None:
            return _checked(list_clips(root), root, quiet)
        folders = label_folders(Path(data_dir))
        if folders and not any(any(p.is_dir() for p in f.iterdir()) for f in folders):
            return list_clips(Path(data_dir))  # your own label folders, none holding audio: say so
    base = data_root(data_dir) / "gtzan"
    root = genre_root(base)
    if root is None:
        if not download:
            raise UserError(
                f"no GTZAN clips under {base}: run 'audio-net data download' or pass --data-dir"
            )
        archive = fetch(
            ARCHIVE_URLS,
            base / "genres.tar.gz",
            ARCHIVE_SHA256,
            quiet=quiet,
            hint="pass --data-dir DIR, a folder holding GTZAN's genre folders (or your own)",
        )
        extract(archive, base / "extracted", quiet=quiet)
        root = genre_root(base / "extracted")
        if root is None:
            raise UserError(
                f"{archive} did not hold genre folders; delete it and {base / 'extracted'}"
            )
    return _checked(list_clips(root), root, quiet)


def _checked(clips: list[Clip], root: Path, quiet: bool = False) -> list[Clip]:
    counts = ", ".join(f"{lab} {sum(c.label == lab for c in clips)}" for lab in labels_of(clips))
    log.info(f"{len(clips)} clips in {root}: {counts}")
    return clips


def split_clips(
    clips: list[Clip], seed: int, val: float = 0.1, test: float = 0.1
) -> dict[str, list[Clip]]:
    """Stratified, seeded train/val/test split of whole clips.

    Per genre: shuffle its clips with the seed; round(n*test) go to test and round(n*val) to val,
    but at least one each when the genre has 3 clips or more (a 10% share of 5 clips rounds to 0,
    which left small sets with nothing to validate or test on); the rest train.
    """
    rng = np.random.default_rng(seed)
    split: dict[str, list[Clip]] = {"train": [], "val": [], "test": []}
    for label_id in sorted({c.label_id for c in clips}):
        members = [c for c in clips if c.label_id == label_id]
        members = [members[i] for i in rng.permutation(len(members))]
        n = len(members)
        n_test = max(round(n * test), 1) if n >= 3 else 0
        n_val = max(round(n * val), 1) if n >= 3 else 0
        n_test, n_val = min(n_test, n - 2), min(n_val, n - 2)  # keep a training clip
        split["test"] += members[:n_test]
        split["val"] += members[n_test : n_test + n_val]
        split["train"] += members[n_test + n_val :]
    return {k: sorted(v, key=lambda c: (c.label_id, c.name)) for k, v in split.items()}


def check_split(split: dict[str, list[Clip]], *, need_test: bool = True) -> None:
    """Refuse a split that cannot train a classifier or measure it, naming what is missing."""
    all_clips = [c for part in split.values() for c in part]
    names = {c.label_id: c.label or str(c.label_id) for c in all_clips}
    if len({c.label_id for c in split["train"]}) < 2:
        found = name_some(sorted({names[c.label_id] for c in split["train"]})) or "none"
        raise UserError(
            f"training needs clips of at least 2 labels; the training split has {found}"
        )
    thin = sorted(
        names[g] for g in names if sum(c.label_id == g for c in all_clips) < (3 if need_test else 2)
    )
    if thin and not all(split[n] for n in (("val", "test") if need_test else ("val",))):
        raise UserError(
            f"too few clips of {some_labels(thin)} for a train/validation/test "
            "split: give each "
            "label at least 3 clips, or use --cv K on a small set"
        )
    for name in ("val", "test") if need_test else ("val",):
        if not split[name]:
            raise UserError(
                f"the {name} split is empty: give each label at least 3 clips (one each for "
                "training, validation and test), or use --cv K on a small set"
            )
    missing = sorted(names[g] for g in names if not any(c.label_id == g for c in split["val"]))
    if thin and missing:
        raise UserError(
            f"too few clips of {some_labels(thin)} to validate on every label: "
            "give each label at "
            "least 3 clips, or use --cv K on a small set"
        )


def cv_folds(clips: list[Clip], k: int, seed: int) -> list[list[Clip]]:
    """``k`` stratified, seeded folds of whole clips (each clip in exactly one fold)."""
    from sklearn.model_selection import StratifiedKFold  # slow (scikit-learn): --cv only

    labels = np.array([c.label_id for c in clips])
    names = {c.label_id: c.label or str(c.label_id) for c in clips}
    present = sorted(names)
    if len(present) < 2:
        raise UserError("cross-validation needs clips of at least 2 labels")
    thin = [names[g] for g in present if (labels == g).sum() < k]
    if thin:
        raise UserError(
            f"--cv {k} needs at least {k} clips of every label; too few of {some_labels(thin)}"
        )
    folds = StratifiedKFold(k, shuffle=True, random_state=seed).split(labels, labels)
    return [[clips[i] for i in sorted(test)] for _, test in folds]


def split_from_files(clips: list[Clip], files: list[Path]) -> dict[str, list[Clip]]:
    """Splits from lists of clip names, one file per split, named for it (train*/val*|valid*/test*).

    Lines such as ``blues/blues.00000.wav`` or ``blues.00000`` (Sturm's fault-filtered split
    files) are matched by clip name; clips named in no file are left out.
    """
    by_name = {c.name: c for c in clips}
    split: dict[str, list[Clip]] = {"train": [], "val": [], "test": []}
    for path in files:
        if not path.is_file():
            raise UserError(f"--split-file {path}: no such file")
        stem = path.name.lower()
        name = (
            "train"
            if "train" in stem
            else "val"
            if "val" in stem
            else "test"
            if "test" in stem
            else None
        )
        if name is None:
            raise UserError(f"--split-file {path}: its name must say train, val(id) or test")
        for line in path.read_text().split():
            entry = Path(line)
            clip = by_name.get(entry.stem if entry.suffix.lower() in AUDIO_SUFFIXES else entry.name)
            if clip is None:
                raise UserError(f"--split-file {path}: clip {line!r} is not in the data set")
            split[name].append(clip)
    seen: dict[str, str] = {}
    for name, part in split.items():
        for clip in part:
            if clip.name in seen and seen[clip.name] != name:
                raise UserError(
                    f"clip {clip.name} is in both the {seen[clip.name]} and {name} split files"
                )
            seen[clip.name] = name
    if not split["train"] or not split["val"]:
        raise UserError("--split-file needs at least a train and a val(id) list")
    return split


def artist_split(clips: list[Clip], quiet: bool = False) -> dict[str, list[Clip]]:
    """``--split artist``: GTZAN's fault-filtered partition (Kereliuk, Sturm and Larsen, 2015; the
    lists torchaudio ships): 443 training, 197 validation and 290 test clips, no artist in two
    parts, and the 70 clips Sturm found repeated, mislabelled or distorted left out. A random split
    of GTZAN puts one artist's songs on both sides and inflates every score (Sturm, arXiv
    1306.1461)."""
    from torchaudio.datasets import gtzan  # the lists only: no audio is read through torchaudio

    lists = {
        "train": gtzan.filtered_train,
        "val": gtzan.filtered_valid,
        "test": gtzan.filtered_test,
    }
    part_of = {name: part for part, names in lists.items() for name in names}
    split: dict[str, list[Clip]] = {part: [] for part in lists}
    for clip in clips:
        if clip.name in part_of:
            split[part_of[clip.name]].append(clip)
    kept = sum(len(v) for v in split.values())
    if not kept:
        raise UserError(
            "--split artist is GTZAN's fault-filtered partition, and none of these clips is a "
            "GTZAN clip (names such as blues.00029): use the default random split for your data"
        )
    log.info(
        f"--split artist (GTZAN fault-filtered): {len(split['train'])} train / "
        f"{len(split['val'])} val / {len(split['test'])} test clips; {len(clips) - kept} clips "
        "in no list (repeated, mislabelled or distorted) left out"
    )
    return split


def data(cfg) -> int:
    """``audio-net data``: download GTZAN, check that it is there, or make the sample set
    (``cfg``: shared.cli.DataCommandConfig)."""
    if cfg.action == "sample":
        write_sample(cfg.data_dir, cfg.quiet)
        return 0
    clips = find_gtzan(cfg.data_dir, download=cfg.action == "download", quiet=cfg.quiet)
    log.info(f"GTZAN: {len(clips)} clips in {clips[0].path.parent.parent}")
    return 0
