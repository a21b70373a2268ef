"""Generated data with a learnable signal for intro-nn's tests (no real samples needed)."""

import numpy as np
import pandas as pd

from intro_nn.loan_data import PURPOSES, TARGET


def make_loans(n: int = 1200, seed: int = 0) -> pd.DataFrame:
    """Loans in loan_data.csv's schema; default risk rises with the rate and inquiries and falls
    with the FICO score, so a model that learns ranks them well above chance."""
    rng = np.random.default_rng(seed)
    fico = rng.integers(612, 828, n)
    rate = np.clip(0.30 - (fico - 600) / 1500 + rng.normal(0, 0.02, n), 0.06, 0.22)
    inq = rng.poisson(1.5, n)
    income = rng.normal(10.9, 0.6, n)
    logit = -1.9 + 18 * (rate - 0.12) + 0.25 * (inq - 1.5) - 0.01 * (fico - 710)
    df = pd.DataFrame(
        {
            "credit.policy": (rng.random(n) < 0.8).astype(int),
            "purpose": rng.choice(PURPOSES, n),
            "int.rate": rate.round(4),
            "installment": rng.uniform(20, 900, n).round(2),
            "log.annual.inc": income.round(4),
            "dti": rng.uniform(0, 30, n).round(2),
            "fico": fico,
            "days.with.cr.line": rng.uniform(200, 15000, n).round(1),
            "revol.bal": rng.integers(0, 60000, n),
            "revol.util": rng.uniform(0, 100, n).round(1),
            "inq.last.6mths": inq,
            "delinq.2yrs": rng.poisson(0.2, n),
            "pub.rec": rng.poisson(0.06, n),
        }
    )
    df[TARGET] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return df


# a 3x5 bitmap font, one row of three pixels per string
FONT = {
    0: ("111", "101", "101", "101", "111"),
    1: ("010", "110", "010", "010", "111"),
    2: ("111", "001", "111", "100", "111"),
    3: ("111", "001", "011", "001", "111"),
    4: ("101", "101", "111", "001", "001"),
    5: ("111", "100", "111", "001", "111"),
    6: ("111", "100", "111", "101", "111"),
    7: ("111", "001", "010", "010", "010"),
    8: ("111", "101", "111", "101", "111"),
    9: ("111", "101", "111", "001", "111"),
}


def make_digits(n: int = 1000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """28x28 digits drawn from a 3x5 bitmap font at 4x scale, shifted by up to 3 pixels, with
    noisy strokes and background: learnable in a few epochs (with augmentation too); chance 10%."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 10
    images = rng.integers(0, 50, (n, 28, 28)).astype(np.float32)
    for i, c in enumerate(labels):
        glyph = np.array([[int(b) for b in row] for row in FONT[c]], np.float32)
        big = np.kron(glyph, np.ones((4, 4), np.float32))  # 20 x 12
        top, left = 4 + rng.integers(-3, 4), 8 + rng.integers(-3, 4)
        images[i, top : top + 20, left : left + 12] += big * rng.uniform(150, 205)
    return np.clip(images, 0, 255).astype(np.uint8), labels


def write_digit_idx(folder, n: int = 1000):
    """``make_digits(n)`` as MNIST's IDX test pair in ``folder``; returns (folder, images)."""
    from intro_nn.idx import write_idx

    folder.mkdir(parents=True, exist_ok=True)
    images, labels = make_digits(n)
    write_idx(folder / "t10k-images-idx3-ubyte.gz", images)
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", labels)
    return folder, images
