"""Part 1: loan default with scikit-learn, measured honestly on an imbalanced target.

Every model sees the same stratified folds. ROC-AUC and PR-AUC rank risk regardless of threshold;
accuracy is reported next to the majority baseline (84% by predicting "paid"); F1 uses a threshold
chosen on each training fold, never on the fold it is scored on.

The fitted pipeline is saved with skops (``loan_model.skops``), not pickle/joblib: loading a pickle
runs whatever code the file names, loading a skops file builds only the types it is told to trust.
``load_loan_model`` trusts exactly the types this project saves and refuses any other.
"""

from __future__ import annotations

import json
import logging
import sys
import time
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)
from sklearn.model_selection import StratifiedKFold
from threadpoolctl import threadpool_limits

from intro_nn.config import PredictConfig, TrainConfig
from intro_nn.loan_data import FEATURES, TARGET, fetch_loan_csv, read_loans
from intro_nn.loan_model import make_models
from shared.errors import UserError
from shared.files import atomic_path
from shared.plots import confusion_matrix_figure, save_figure
from shared.progress import progress, warn
from shared.runs import Run

log = logging.getLogger(__name__)

MODEL_FILE = "loan_model.skops"
# The only types of a saved loan model that skops does not trust by itself (checked by a test that
# saves both solvers' pipelines): our feature function and early-stopping MLP, and the Adam state.
TRUSTED_TYPES = frozenset(
    {
        "intro_nn.loan_model.add_features",
        "intro_nn.loan_model.LogLossEarlyStoppingMLP",
        "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
    }
)


def best_f1_threshold(y: np.ndarray, proba: np.ndarray) -> float:
    precision, recall, thresholds = precision_recall_curve(y, proba)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    return float(thresholds[int(np.argmax(f1[:-1]))]) if len(thresholds) else 0.5


# The loan models multiply matrices of a few thousand rows by 20-32 columns: one BLAS thread does
# that faster than two, and far faster still when another process holds the other core
# (OpenBLAS's threads wait for each other by spinning; measured: NOTES.md, "Loans").
LOAN_BLAS_THREADS = 1


def cross_validate(
    models: dict, X: pd.DataFrame, y: np.ndarray, folds: int, seed: int, quiet: bool
):
    """Out-of-fold probabilities and per-fold metrics for every model on the same splits."""
    with threadpool_limits(LOAN_BLAS_THREADS):
        return _cross_validate(models, X, y, folds, seed, quiet)


def _cross_validate(models: dict, X: pd.DataFrame, y: np.ndarray, folds: int, seed: int, quiet):
    splits = list(StratifiedKFold(folds, shuffle=True, random_state=seed).split(X, y))
    oof = {name: np.zeros(len(y)) for name in models}
    oof_pred = {name: np.zeros(len(y), dtype=int) for name in models}
    per_fold: dict[str, list[dict]] = {name: [] for name in models}
    seconds = dict.fromkeys(models, 0.0)
    for train_idx, test_idx in progress(splits, quiet=quiet, desc="cv folds"):
        for name, model in models.items():
            t0 = time.perf_counter()
            fitted = clone(model).fit(X.iloc[train_idx], y[train_idx])
            threshold = best_f1_threshold(
                y[train_idx], fitted.predict_proba(X.iloc[train_idx])[:, 1]
            )
            proba = fitted.predict_proba(X.iloc[test_idx])[:, 1]
            seconds[name] += time.perf_counter() - t0
            yt = y[test_idx]
            oof[name][test_idx] = proba
            oof_pred[name][test_idx] = (proba >= threshold).astype(int)
            per_fold[name].append(
                {
                    "roc_auc": roc_auc_score(yt, proba),
                    "pr_auc": average_precision_score(yt, proba),
                    "accuracy": accuracy_score(yt, proba >= 0.5),
                    "balanced_accuracy": balanced_accuracy_score(yt, proba >= threshold),
                    "f1": f1_score(yt, proba >= threshold, zero_division=0),
                    "threshold": threshold,
                }
            )
    summary = {}
    for name, rows in per_fold.items():
        frame = pd.DataFrame(rows)
        summary[name] = {k: round(float(v), 4) for k, v in frame.mean().items()}
        summary[name].update(
            {f"{k}_std": round(float(v), 4) for k, v in frame[["roc_auc", "pr_auc"]].std().items()}
        )
        summary[name]["fit_seconds"] = round(seconds[name], 2)
    return summary, oof, oof_pred


def draw_curves(path: Path, y: np.ndarray, oof: dict[str, np.ndarray]) -> Path:
    import matplotlib.pyplot as plt  # slow: only training draws (predict loads the model)

    fig, (roc_ax, pr_ax) = plt.subplots(1, 2, figsize=(10, 4.2))
    for name, proba in oof.items():
        if name == "majority":  # one constant score per fold: its pooled "curve" is an artefact
            continue
        fpr, tpr, _ = roc_curve(y, proba)
        roc_ax.plot(fpr, tpr, label=f"{name} (AUC {roc_auc_score(y, proba):.3f})")
        precision, recall, _ = precision_recall_curve(y, proba)
        pr_ax.plot(recall, precision, label=f"{name} (AP {average_precision_score(y, proba):.3f})")
    # what the majority baseline scores: the diagonal, and precision at the base rate
    roc_ax.plot([0, 1], [0, 1], "k:", linewidth=0.8, label="majority baseline (AUC 0.5)")
    roc_ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC")
    pr_ax.axhline(
        y.mean(), color="k", linestyle=":", linewidth=0.8, label=f"base rate {y.mean():.2f}"
    )
    pr_ax.set(xlabel="recall", ylabel="precision", title="precision-recall")
    fig.suptitle("every loan scored out-of-fold, the five folds pooled", fontsize=10)
    for ax in (roc_ax, pr_ax):
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    return save_figure(fig, path)


@dataclass
class LoanTable:
    frame: pd.DataFrame
    path: Path

    @property
    def X(self) -> pd.DataFrame:
        return self.frame.loc[:, list(FEATURES)]

    @property
    def y(self) -> np.ndarray:
        return self.frame[TARGET].to_numpy().astype(int)


def load_loan_table(cfg: TrainConfig) -> LoanTable:
    """The loan CSV, found or downloaded and validated (before any run folder exists)."""
    path = fetch_loan_csv(cfg.data, cfg.data_dir, quiet=cfg.quiet, allow_download=cfg.download)
    table = LoanTable(read_loans(path), path)
    counts = np.bincount(table.y, minlength=2)
    if counts.min() < cfg.folds:
        raise UserError(
            f"{path}: {counts[1]} loans not fully paid and {counts[0]} paid; stratified "
            f"{cfg.folds}-fold cross-validation needs at least {cfg.folds} of each"
        )
    return table


def train_loan(cfg: TrainConfig, run: Run, table: LoanTable) -> dict:
    df, X, y = table.frame, table.X, table.y
    log.info(f"loan: {len(df)} rows from {table.path}, {y.mean():.1%} not fully paid")
    if cfg.eda:
        from intro_nn.loan_eda import draw_eda  # plotting stack only when training

        draw_eda(df, run.figures)
    models = make_models(tuple(cfg.loan_hidden), cfg.loan_alpha, cfg.loan_solver, cfg.seed)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        summary, oof, oof_pred = cross_validate(models, X, y, cfg.folds, cfg.cv_seed, cfg.quiet)
        with threadpool_limits(LOAN_BLAS_THREADS):
            final = clone(models["mlp"]).fit(X, y)
    cv_seconds = time.perf_counter() - t0
    draw_curves(run.figure("loan_roc_pr.png"), y, oof)
    confusion_matrix_figure(
        confusion_matrix(y, oof_pred["mlp"]),
        ["paid", "not paid"],
        run.figure("loan_confusion_matrix.png"),
        title="loan MLP, out-of-fold, F1 threshold from training folds",
    )
    threshold = summary["mlp"]["threshold"]  # mean of the training-fold F1 thresholds
    save_loan_model(run.path / MODEL_FILE, final, threshold)
    return {
        **summary,
        **mlp_below_baselines(summary),
        "rows": len(df),
        "positive_rate": round(float(y.mean()), 4),
        "folds": cfg.folds,
        "cv_seed": cfg.cv_seed,
        "cv_seconds": round(cv_seconds, 2),
        "model_file": str(run.path / MODEL_FILE),
    }


def mlp_below_baselines(summary: dict) -> dict:
    """The MLP's ROC AUC below a baseline printed beside it (logistic regression, or the majority
    class's 0.5): one warning line, and the same advice in the summary under ``warning``."""
    mlp = summary["mlp"]["roc_auc"]
    worse = [name for name in ("majority", "logreg") if mlp < summary[name]["roc_auc"]]
    if not worse:
        return {}
    scores = ", ".join(f"{summary[n]['roc_auc']:.3f}" for n in worse)
    advice = (
        f"the loan MLP's ROC AUC ({mlp:.3f}) is below {' and '.join(worse)} ({scores}): try a "
        "stronger --loan-alpha (more regularisation) or a smaller --loan-hidden"
    )
    warn(advice)
    return {"warning": advice}


def save_loan_model(path: Path, pipeline, threshold: float) -> Path:
    import skops.io as sio  # slow (about 1 s): saving and loading the model only

    bundle = {"pipeline": pipeline, "threshold": float(threshold), "features": list(FEATURES)}
    with atomic_path(path) as tmp:
        sio.dump(bundle, tmp)
    return path


def load_loan_model(path: Path) -> dict:
    """A saved loan model, built from trusted types only; anything else is refused unloaded."""
    import skops.io as sio  # slow (about 1 s): saving and loading the model only

    path = Path(path)
    if path.is_dir():
        if not (path / MODEL_FILE).is_file() and (path / "loan_model.joblib").is_file():
            raise UserError(
                f"{path / 'loan_model.joblib'} is a pickle, which can run code when loaded; "
                f"this version reads only {MODEL_FILE}: run 'intro-nn train loan' again"
            )
        path = path / MODEL_FILE
    if not path.is_file():
        raise UserError(f"--run {path}: no {MODEL_FILE} there; run 'intro-nn train loan' first")
    if not zipfile.is_zipfile(path):
        raise UserError(f"{path} is not a skops file (a saved loan model is a zip archive)")
    try:
        found = set(sio.get_untrusted_types(file=path))
        unexpected = sorted(found - TRUSTED_TYPES)
        if unexpected:
            raise UserError(
                f"{path} refers to types a loan model never holds ({', '.join(unexpected[:5])}); "
                "refusing to load it"
            )
        bundle = sio.load(path, trusted=sorted(found))
    except UserError:
        raise
    except Exception as exc:  # skops raises many kinds on a damaged file
        raise UserError(f"{path} is not a readable loan model ({exc.__class__.__name__})") from exc
    if not isinstance(bundle, dict) or "pipeline" not in bundle or "threshold" not in bundle:
        raise UserError(f"{path} is not a saved loan model")
    return bundle


def predict_loan(cfg: PredictConfig) -> int:
    if cfg.run is None or cfg.csv is None:
        raise UserError("predict loan needs --run RUN_FOLDER_OR_FILE and --csv ROWS.csv")
    bundle = load_loan_model(cfg.run)
    if not cfg.csv.is_file():
        raise UserError(f"--csv {cfg.csv}: no such file")
    df = read_loans(cfg.csv, require_target=False)
    proba = bundle["pipeline"].predict_proba(df.loc[:, list(FEATURES)])[:, 1]
    out = pd.DataFrame(
        {
            "row": np.arange(len(df)),
            "probability_not_fully_paid": np.round(proba, 6),
            "flagged": (proba >= bundle["threshold"]).astype(int),
        }
    )
    if cfg.format == "json":
        print(json.dumps(out.to_dict(orient="records")))
    else:
        out.to_csv(sys.stdout, index=False)
    return 0
