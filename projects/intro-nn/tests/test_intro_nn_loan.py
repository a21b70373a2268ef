import json
import shutil

import numpy as np
import pandas as pd
import pytest

from intro_nn.cli import main
from intro_nn.loan import TRUSTED_TYPES, load_loan_model
from intro_nn.loan_data import FEATURES, TARGET


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def write(tmp_path, df, name="bad.csv"):
    path = tmp_path / name
    df.to_csv(path, index=False)
    return path


def train_loan(capsys, csv, out, *extra):
    code, stdout, err = run_cli(
        capsys, "train", "loan", "--data", csv, "--out", out, "--folds", "3", "--quiet", *extra
    )
    assert code == 0, err
    return json.loads(stdout.strip().splitlines()[-1])


def test_train_then_predict_end_to_end(capsys, loan_csv, tmp_path):
    """On generated loans with a known signal: the MLP must rank risk well above chance."""
    out = tmp_path / "run"
    summary = train_loan(capsys, loan_csv, out)
    assert set(summary) >= {"mlp", "logreg", "majority"}
    assert summary["majority"]["roc_auc"] == 0.5
    assert summary["mlp"]["roc_auc"] >= 0.70 and summary["logreg"]["roc_auc"] >= 0.70
    assert summary["mlp"]["pr_auc"] > summary["majority"]["pr_auc"] + 0.1
    for name in (
        "loan_class_balance",
        "loan_histograms",
        "loan_purpose",
        "loan_correlations",
        "loan_roc_pr",
        "loan_confusion_matrix",
    ):
        assert (out / "figures" / f"{name}.png").read_bytes()[:4] == b"\x89PNG"

    frame = pd.read_csv(loan_csv)
    rows = write(tmp_path, frame.head(5).drop(columns=[TARGET]), "rows.csv")
    code, stdout, _ = run_cli(capsys, "predict", "loan", "--run", out, "--csv", rows)
    assert code == 0
    lines = stdout.strip().splitlines()
    assert lines[0] == "row,probability_not_fully_paid,flagged" and len(lines) == 6
    code, stdout, _ = run_cli(
        capsys, "predict", "loan", "--model", out, "--csv", rows, "--format", "json"
    )  # --model: the older spelling of --run
    records = json.loads(stdout)
    # the saved pipeline gives the probabilities the run's own final model gives
    expected = load_loan_model(out)["pipeline"].predict_proba(frame.head(5)[list(FEATURES)])[:, 1]
    assert [r["probability_not_fully_paid"] for r in records] == list(np.round(expected, 6))


def test_real_loans_beat_the_majority_baseline(capsys, real_data, tmp_path):
    csv = tmp_path / "loan_data.csv"
    shutil.copy(real_data / "loan" / "loan_data.csv", csv)
    summary = train_loan(capsys, csv, tmp_path / "run", "--no-eda")
    assert summary["mlp"]["roc_auc"] >= 0.65 and summary["logreg"]["roc_auc"] >= 0.65
    assert summary["mlp"]["pr_auc"] > summary["majority"]["pr_auc"] + 0.08


def test_saved_model_trusts_only_its_own_types(tmp_path, loan_csv, capsys):
    """Both solvers' pipelines load: the allow-list holds every type they need, and no more."""
    import skops.io as sio

    seen = set()
    for solver in ("lbfgs", "adam"):
        out = tmp_path / solver
        train_loan(capsys, loan_csv, out, "--loan-solver", solver, "--no-eda", "--loan-alpha", "1")
        seen |= set(sio.get_untrusted_types(file=out / "loan_model.skops"))
        assert load_loan_model(out)["threshold"] > 0
    assert seen == TRUSTED_TYPES


def test_early_stopping_watches_log_loss():
    from intro_nn.loan_model import make_mlp

    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 4))
    y = (X[:, 0] + rng.normal(size=600) > 1.5).astype(int)
    clf = make_mlp((8,), 1.0, "adam", 0).fit(X, y)
    assert all(s < 0 for s in clf.validation_scores_)  # negative log-loss, not accuracy


@pytest.mark.parametrize("solver", ["lbfgs"])
def test_out_of_fold_threshold_is_from_training_folds(solver, loan_csv, tmp_path, capsys):
    summary = train_loan(capsys, loan_csv, tmp_path / "r", "--no-eda", "--loan-solver", solver)
    # F1 at a training-fold threshold is below the best F1 the scored folds themselves would give
    assert 0 < summary["mlp"]["threshold"] < 1 and 0 < summary["mlp"]["f1"] < 1


def test_an_mlp_below_a_baseline_says_so(capsys):
    from intro_nn.loan import mlp_below_baselines

    scores = {"majority": {"roc_auc": 0.5}, "logreg": {"roc_auc": 0.68}}
    assert mlp_below_baselines({**scores, "mlp": {"roc_auc": 0.69}}) == {}
    note = mlp_below_baselines({**scores, "mlp": {"roc_auc": 0.61}})["warning"]
    assert "below logreg (0.680)" in note and "--loan-alpha" in note
    assert capsys.readouterr().err.count("warning:") == 1


def test_an_offline_mnist_download_names_its_reason():
    from shared.download import why_failed

    try:
        try:
            raise OSError("[Errno -2] Name or service not known")
        except OSError as inner:
            raise RuntimeError("Error downloading train-images-idx3-ubyte.gz:\n") from inner
    except RuntimeError as exc:
        assert why_failed(exc) == "no network"
