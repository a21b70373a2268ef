"""Exploratory figures of the loan table: what a practitioner looks at before modelling."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from intro_nn.loan_data import CATEGORICAL, NUMERIC, TARGET
from shared.plots import save_figure

CLASS_NAMES = {0: "fully paid", 1: "not fully paid"}
COLORS = {0: "#4c72b0", 1: "#dd8452"}


AXIS_LABELS = {"fico": "FICO credit score", "int.rate": "interest rate (fraction per year)"}


def draw_eda(df: pd.DataFrame, folder: Path) -> list[Path]:
    paths = []
    counts = df[TARGET].value_counts().sort_index()
    fig, ax = plt.subplots(figsize=(4.5, 3.5))
    ax.bar(
        [CLASS_NAMES[i] for i in counts.index],
        counts.values,
        color=[COLORS[i] for i in counts.index],
    )
    for i, v in enumerate(counts.values):
        ax.text(i, v, f"{v} ({v / counts.sum():.1%})", ha="center", va="bottom")
    ax.set_title("class balance")
    paths.append(save_figure(fig, folder / "loan_class_balance.png"))

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, col in zip(axes, ("fico", "int.rate"), strict=True):
        for cls in (0, 1):
            ax.hist(
                df.loc[df[TARGET] == cls, col],
                bins=35,
                alpha=0.6,
                density=True,
                color=COLORS[cls],
                label=CLASS_NAMES[cls],
            )
        ax.set(
            title=f"{col} by class", xlabel=AXIS_LABELS[col], ylabel="density (area 1 per class)"
        )
        ax.legend()
    paths.append(save_figure(fig, folder / "loan_histograms.png"))

    table = pd.crosstab(df[CATEGORICAL], df[TARGET]).rename(columns=CLASS_NAMES)
    fig, ax = plt.subplots(figsize=(8, 3.8))
    table.plot.bar(ax=ax, color=[COLORS[0], COLORS[1]])
    rate = table["not fully paid"] / table.sum(axis=1)
    for i, r in enumerate(rate):
        ax.text(i, table.iloc[i].max(), f"{r:.0%}", ha="center", va="bottom", fontsize=8)
    ax.set_title("loan purpose by class (label: share not fully paid)")
    ax.set_xlabel("")
    ax.tick_params(axis="x", rotation=30)
    paths.append(save_figure(fig, folder / "loan_purpose.png"))

    paths.append(correlation_figure(df, folder / "loan_correlations.png"))
    return [p for p in paths if np.all(p.exists())]


def correlation_figure(df: pd.DataFrame, path: Path) -> Path:
    """Pearson correlations of the numeric columns and the target, each cell labelled."""
    corr = df[[*NUMERIC, TARGET]].corr().to_numpy()
    labels = [*NUMERIC, TARGET]
    fig, ax = plt.subplots(figsize=(8, 7))
    im = ax.imshow(corr, cmap="RdBu_r", vmin=-1, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(
                j,
                i,
                f"{corr[i, j]:.2f}",
                ha="center",
                va="center",
                fontsize=6,
                color="white" if abs(corr[i, j]) > 0.5 else "black",
            )
    fig.colorbar(im, ax=ax, fraction=0.046)
    ax.set_title("correlations (numeric columns and target)")
    return save_figure(fig, path)
