"""The LendingClub loan table: where to get it, and its schema checked at the edge."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from shared.download import fetch
from shared.errors import UserError
from shared.files import data_root

# The exact CSV the original Intro-NN notebook used (9,578 rows x 14 columns).
LOAN_URLS = [
    "https://raw.githubusercontent.com/GdKent/Introduction-to-Deep-Learning/main/Intro_NN/loan_data.csv",
    "https://raw.githubusercontent.com/GdKent/Introduction-to-Deep-Learning/master/Intro_NN/loan_data.csv",
]
LOAN_SHA256 = "ac4ac35eb968f631cdb6d84437622fb4d2d910afebd6dff6744b48b9a5426c07"

LOAN_FILE = "loan_data.csv"
LOAN_HINT = f"pass --data FILE (or --data-dir DIR, a folder holding {LOAN_FILE})"

TARGET = "not.fully.paid"
CATEGORICAL = "purpose"
PURPOSES = (
    "all_other",
    "credit_card",
    "debt_consolidation",
    "educational",
    "home_improvement",
    "major_purchase",
    "small_business",
)
NUMERIC = (
    "credit.policy",
    "int.rate",
    "installment",
    "log.annual.inc",
    "dti",
    "fico",
    "days.with.cr.line",
    "revol.bal",
    "revol.util",
    "inq.last.6mths",
    "delinq.2yrs",
    "pub.rec",
)
FEATURES = (CATEGORICAL, *NUMERIC)


def fetch_loan_csv(
    path: Path | None, data_dir: Path | None, *, quiet: bool = False, allow_download: bool = True
) -> Path:
    """``--data PATH`` if given; else ``loan_data.csv`` in ``--data-dir`` itself when it holds
    one (the folder a user naturally points at), else ``<data root>/loan/loan_data.csv``
    (downloaded if missing)."""
    if path is not None:
        if not Path(path).is_file():
            raise UserError(f"--data {path}: no such file")
        return Path(path)
    if data_dir is not None and (Path(data_dir) / LOAN_FILE).is_file():
        return Path(data_dir) / LOAN_FILE
    dest = data_root(data_dir) / "loan" / LOAN_FILE
    if dest.is_file() or allow_download:
        return fetch(LOAN_URLS, dest, LOAN_SHA256, quiet=quiet, hint=LOAN_HINT)
    raise UserError(f"{dest} is missing: run 'intro-nn data download', or {LOAN_HINT}")


def read_loans(path: Path, *, require_target: bool = True) -> pd.DataFrame:
    """Read and validate a loan CSV: required columns, numeric columns numeric, known purposes."""
    try:
        df = pd.read_csv(path)
    except pd.errors.EmptyDataError as exc:
        raise UserError(f"{path} is empty") from exc
    except (pd.errors.ParserError, UnicodeDecodeError, OSError) as exc:
        raise UserError(f"{path} is not a readable CSV ({exc.__class__.__name__})") from exc
    if not isinstance(df.index, pd.RangeIndex):  # pandas made the extra leading cells an index
        raise UserError(f"{path}: some rows have more cells than the header has columns")
    return validate_loans(df, path, require_target=require_target)


def validate_loans(
    df: pd.DataFrame, source: object, *, require_target: bool = True
) -> pd.DataFrame:
    if df.empty:
        raise UserError(f"{source} has a header but no rows")
    df = df.reset_index(drop=True)  # row numbers in messages are positions
    needed = [*FEATURES, TARGET] if require_target else list(FEATURES)
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise UserError(f"{source} lacks the column(s) {', '.join(missing)}")
    for col in [*NUMERIC, TARGET] if require_target else NUMERIC:
        converted = pd.to_numeric(df[col], errors="coerce")
        bad = converted.isna() & df[col].notna() | df[col].isna()
        if bad.any():
            row = int(np.argmax(bad.to_numpy()))
            raise UserError(
                f"{source}: column {col!r} must be numeric; row {row + 2} holds {df[col].iloc[row]!r}"
                f" ({int(bad.sum())} bad value(s))"
            )
        infinite = ~np.isfinite(converted.to_numpy(dtype=float))
        if infinite.any():
            row = int(np.argmax(infinite))
            raise UserError(
                f"{source}: column {col!r} must be finite; row {row + 2} holds {df[col].iloc[row]!r}"
                f" ({int(infinite.sum())} infinite value(s))"
            )
        df[col] = converted
    unknown = sorted(set(df[CATEGORICAL].astype(str)) - set(PURPOSES))
    if unknown:
        raise UserError(
            f"{source}: unknown purpose value(s) {', '.join(map(repr, unknown))}; "
            f"known: {', '.join(PURPOSES)}"
        )
    if require_target and not set(df[TARGET].unique()) <= {0, 1}:
        raise UserError(f"{source}: {TARGET!r} must be 0 or 1")
    return df
