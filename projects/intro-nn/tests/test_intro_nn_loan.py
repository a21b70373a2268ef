import json
import shutil

import pandas as pd
import pytest

from intro_nn.cli import main


def run_cli(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture()
def loan_csv(real_data, tmp_path):
    dest = tmp_path / "loan_data.csv"
    shutil.copy(real_data / "loan" / "loan_data.csv", dest)
    return dest


def write(tmp_path, df, name="bad.csv"):
    path = tmp_path / name
    df.to_csv(path, index=False)
    return path


def test_schema_errors_exit_2(capsys, loan_csv, tmp_path):
    df = pd.read_csv(loan_csv).head(50)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    cases = {
        "lacks the column(s) fico": write(tmp_path, df.drop(columns=["fico"]), "a.csv"),
        "column 'dti' must be numeric": write(tmp_path, df.assign(dti=["x"] * 50), "b.csv"),
        "is empty": empty,
        "no rows": write(tmp_path, df.head(0), "c.csv"),
        "unknown purpose value(s) 'yacht'": write(tmp_path, df.assign(purpose="yacht"), "d.csv"),
    }
    for message, path in cases.items():
        code, _, err = run_cli(
            capsys, "train", "loan", "--data", str(path), "--out", str(tmp_path / "r")
        )
        assert code == 2, message
        assert message in err and "Traceback" not in err


def test_missing_file_and_offline_download_are_clear(capsys, tmp_path, monkeypatch):
    code, _, err = run_cli(capsys, "train", "loan", "--data", str(tmp_path / "nope.csv"))
    assert code == 2 and "no such file" in err
    # No --data and nothing in the data root: the download is tried; offline it names what to do.
    monkeypatch.setattr("intro_nn.loan_data.LOAN_URLS", ["http://127.0.0.1:9/loan_data.csv"])
    code, _, err = run_cli(capsys, "train", "loan")
    assert code == 2 and "by hand" in err and "loan_data.csv" in err


def test_train_then_predict_end_to_end(capsys, loan_csv, tmp_path):
    out = tmp_path / "run"
    code, stdout, _ = run_cli(
        capsys,
        "train",
        "loan",
        "--data",
        str(loan_csv),
        "--out",
        str(out),
        "--folds",
        "3",
        "--quiet",
    )
    assert code == 0
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert set(summary) >= {"mlp", "logreg", "majority"}
    assert summary["mlp"]["roc_auc"] >= 0.65 and summary["logreg"]["roc_auc"] >= 0.65
    assert summary["majority"]["roc_auc"] == 0.5
    assert summary["mlp"]["pr_auc"] > summary["majority"]["pr_auc"] + 0.08
    for name in (
        "loan_class_balance",
        "loan_histograms",
        "loan_purpose",
        "loan_correlations",
        "loan_roc_pr",
        "loan_confusion_matrix",
    ):
        assert (out / "figures" / f"{name}.png").read_bytes()[:4] == b"\x89PNG"

    rows = write(
        tmp_path, pd.read_csv(loan_csv).head(5).drop(columns=["not.fully.paid"]), "rows.csv"
    )
    code, stdout, _ = run_cli(capsys, "predict", "loan", "--model", str(out), "--csv", str(rows))
    assert code == 0
    lines = stdout.strip().splitlines()
    assert lines[0] == "row,probability_not_fully_paid,flagged" and len(lines) == 6
    code, stdout, _ = run_cli(
        capsys, "predict", "loan", "--model", str(out), "--csv", str(rows), "--format", "json"
    )
    records = json.loads(stdout)
    assert len(records) == 5 and all(0 < r["probability_not_fully_paid"] < 1 for r in records)

    bad = write(tmp_path, pd.read_csv(rows).assign(purpose="space_travel"), "bad_rows.csv")
    code, _, err = run_cli(capsys, "predict", "loan", "--model", str(out), "--csv", str(bad))
    assert code == 2 and "space_travel" in err
    code, _, err = run_cli(capsys, "predict", "loan", "--model", str(tmp_path), "--csv", str(rows))
    assert code == 2 and "train loan" in err


def test_early_stopping_watches_log_loss():
    import numpy as np

    from intro_nn.loan_model import make_mlp

    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 4))
    y = (X[:, 0] + rng.normal(size=600) > 1.5).astype(int)
    clf = make_mlp((8,), 1.0, "adam", 0).fit(X, y)
    assert all(s < 0 for s in clf.validation_scores_)  # negative log-loss, not accuracy
