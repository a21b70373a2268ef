"""Figures (matplotlib, Agg backend outside notebooks, PNG files written atomically).

- ``LivePlot``: curves rewritten every N updates so a user can watch training.
- ``image_grid``: images titled with true/predicted labels, correct green and wrong red.
- ``spectrogram_grid``: the same for spectrograms (time on x, frequency up).
- ``confusion_matrix_figure``: a normalised confusion-matrix heatmap with counts.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import matplotlib

if "ipykernel" not in sys.modules:  # a notebook keeps its inline figures
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from shared.files import atomic_path  # noqa: E402

CORRECT, WRONG = "#1a7f37", "#cf222e"


def save_figure(fig: plt.Figure, path: str | Path, dpi: int = 110) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return path


def _split_key(key: str) -> tuple[str, str]:
    """``train_loss`` -> panel ``loss``, series ``train``; ``lr`` -> panel ``lr``."""
    if "_" in key:
        prefix, rest = key.split("_", 1)
        if prefix in ("train", "val", "valid", "test", "eval"):
            return rest, prefix
    return key, key


class LivePlot:
    """Accumulates (step, value) series and redraws one PNG every ``redraw_every`` updates, at most once
    every ``min_seconds`` (drawing costs about a second a panel: a plot must not slow training).

    Series named ``<split>_<metric>`` share a panel per metric (train and val loss together);
    ``metrics`` keeps only those metrics' panels (all when None).
    """

    def __init__(
        self,
        path: str | Path,
        redraw_every: int = 1,
        title: str | None = None,
        xlabel: str = "step",
        metrics: Sequence[str] | None = None,
        min_seconds: float = 5.0,
    ):
        self.path = Path(path)
        self.redraw_every = max(1, redraw_every)
        self.title = title
        self.xlabel = xlabel
        self.metrics = set(metrics) if metrics is not None else None
        self.min_seconds = min_seconds
        self.series: dict[str, tuple[list[float], list[float]]] = {}
        self.updates = 0
        self.last_draw = -math.inf

    def update(self, step: float, **values: float | None) -> None:
        for key, value in values.items():
            if value is None or (isinstance(value, float) and math.isnan(value)):
                continue
            if self.metrics is not None and _split_key(key)[0] not in self.metrics:
                continue
            xs, ys = self.series.setdefault(key, ([], []))
            xs.append(float(step))
            ys.append(float(value))
        self.updates += 1
        due = time.monotonic() - self.last_draw >= self.min_seconds
        if self.updates % self.redraw_every == 0 and due:
            self.draw()

    def draw(self) -> Path | None:
        if not self.series:
            return None
        self.last_draw = time.monotonic()
        panels: dict[str, list[str]] = {}
        for key in self.series:
            panels.setdefault(_split_key(key)[0], []).append(key)
        fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.6), squeeze=False)
        for ax, (panel, keys) in zip(axes[0], panels.items(), strict=True):
            for key in keys:
                xs, ys = self.series[key]
                style = "o-" if len(xs) < 30 else "-"
                ax.plot(xs, ys, style, label=_split_key(key)[1], markersize=3, linewidth=1.2)
            ax.set_title(panel)
            ax.set_xlabel(self.xlabel)
            ax.grid(alpha=0.3)
            if len(keys) > 1:
                ax.legend()
        if self.title:
            fig.suptitle(self.title)
        return save_figure(fig, self.path)


def label_colors(true: Sequence[int], pred: Sequence[int]) -> list[str]:
    return [CORRECT if t == p else WRONG for t, p in zip(true, pred, strict=True)]


def true_pred_titles(
    true: Sequence[int], pred: Sequence[int] | None, names: Sequence[str]
) -> list[str]:
    if pred is None:
        return [str(names[t]) for t in true]
    return [f"true {names[t]}\npred {names[p]}" for t, p in zip(true, pred, strict=True)]


def image_grid(
    images: np.ndarray,
    path: str | Path,
    *,
    titles: Sequence[str] | None = None,
    colors: Sequence[str] | None = None,
    ncols: int = 8,
    cmap: str = "gray",
    origin: str = "upper",
    aspect: str = "equal",
    cell: tuple[float, float] = (1.4, 1.6),
    suptitle: str | None = None,
    dpi: int = 110,
    colorbar: str | None = None,
) -> Path:
    """Images (N,H,W), (N,1,H,W) or (N,3,H,W)/(N,H,W,3) in a grid, each with an optional title.
    ``colorbar``: one colour scale for all the (grey) images and a colour bar with this label."""
    images = np.asarray(images)
    if images.ndim == 4 and images.shape[1] in (1, 3):
        images = images[:, 0] if images.shape[1] == 1 else images.transpose(0, 2, 3, 1)
    n = len(images)
    ncols = max(1, min(ncols, n))
    nrows = max(1, math.ceil(n / ncols))
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(cell[0] * ncols, cell[1] * nrows), squeeze=False
    )
    scale = {"vmin": float(images.min()), "vmax": float(images.max())} if colorbar else {}
    shown = None
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        shown = ax.imshow(
            images[i], cmap=cmap, origin=origin, aspect=aspect, interpolation="nearest", **scale
        )
        if titles is not None:
            ax.set_title(titles[i], fontsize=8, color=colors[i] if colors else "black")
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    if colorbar and shown is not None:
        fig.colorbar(shown, ax=axes.ravel().tolist(), shrink=0.8, pad=0.02, label=colorbar)
    return save_figure(fig, path, dpi)


def spectrogram_grid(specs: np.ndarray, path: str | Path, **kwargs) -> Path:
    """Log-mel spectrograms (N, n_mels, frames), low frequencies at the bottom."""
    kwargs.setdefault("ncols", 4)
    kwargs.setdefault("cell", (3.0, 2.2))
    return image_grid(specs, path, cmap="magma", origin="lower", aspect="auto", **kwargs)


MAX_MATRIX_LABELS = 30  # a confusion matrix shows at most this many labels, counts in every cell


def most_confused(cm: np.ndarray, n: int) -> np.ndarray:
    """The ``n`` labels with the most errors (as truth or as prediction; ties: more examples),
    in their original order."""
    off = np.array(cm, dtype=np.int64)
    np.fill_diagonal(off, 0)
    order = np.lexsort((-np.asarray(cm).sum(1), -(off.sum(0) + off.sum(1))))
    return np.sort(order[:n])


def confusion_matrix_figure(
    cm: np.ndarray, labels: Sequence[str], path: str | Path, *, title: str = "confusion matrix"
) -> Path:
    """Row-normalised colours (recall per true class) with the raw counts written in each cell.
    Past ``MAX_MATRIX_LABELS`` labels it shows the most confused ones (its size and its cell
    texts stay bounded: 500 labels would be a 30,000-pixel figure with 250,000 texts)."""
    cm = np.asarray(cm)
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    if len(labels) > MAX_MATRIX_LABELS:
        keep = most_confused(cm, MAX_MATRIX_LABELS)
        title = f"{title}\n{len(keep)} of {len(labels)} labels: the most confused"
        cm, norm = cm[np.ix_(keep, keep)], norm[np.ix_(keep, keep)]
        labels = [labels[i] for i in keep]
    size = max(4.0, 0.55 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size, size * 0.85))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(
                j,
                i,
                str(int(cm[i, j])),
                ha="center",
                va="center",
                fontsize=8,
                color="white" if norm[i, j] > 0.5 else "black",
            )
    fig.colorbar(im, ax=ax, fraction=0.046, label="share of the true row")
    return save_figure(fig, path)
