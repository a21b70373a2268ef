"""Bad input as a user or an operator would give it: each case ends in one line naming the
problem, exit status 2, no traceback, nothing half-written, and no run folder left behind."""

import os
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from intro_nn_data import make_digits, make_loans

from intro_nn.cli import main
from intro_nn.idx import write_idx
from testkit import assert_clean_failure


class RunsCommand:
    """Pickled, it runs ``touch MARKER`` when unpickled: what a crafted model file does."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def loan_cases(tmp_path):
    df = make_loans(200)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    cases = {
        "a.csv": (df.drop(columns=["fico"]), "lacks the column(s) fico"),
        "b.csv": (df.assign(dti=["x"] * 200), "column 'dti' must be numeric"),
        "c.csv": (df.head(0), "no rows"),
        "d.csv": (df.assign(purpose="yacht"), "unknown purpose value(s) 'yacht'"),
        "e.csv": (df.assign(**{"int.rate": np.inf}), "column 'int.rate' must be finite"),
        "f.csv": (df.assign(**{"not.fully.paid": 2}), "must be 0 or 1"),
        "g.csv": (df.assign(**{"not.fully.paid": [1, 1] + [0] * 198}), "needs at least 5 of each"),
    }
    out = []
    for name, (frame, message) in cases.items():
        frame.to_csv(tmp_path / name, index=False)
        out.append((tmp_path / name, message))
    return [*out, (empty, "is empty"), (tmp_path / "nope.csv", "no such file")]


def test_bad_loan_tables(capsys, tmp_path):
    for path, message in loan_cases(tmp_path):
        argv = ["train", "loan", "--data", path, "--quiet"]
        assert_clean_failure(main, argv, capsys, message, root=tmp_path)
    assert not (tmp_path / "runs").exists()  # no orphan run folder after any refusal


def idx_pair(folder, images, labels):
    folder.mkdir()
    write_idx(folder / "t10k-images-idx3-ubyte.gz", images)
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", labels)
    return folder


def test_bad_mnist_files(capsys, tmp_path):
    images, labels = make_digits(200)
    truncated = idx_pair(tmp_path / "t", images, labels)
    raw = (truncated / "t10k-images-idx3-ubyte.gz").read_bytes()
    (truncated / "t10k-images-idx3-ubyte.gz").write_bytes(raw[: len(raw) // 2])
    magic = tmp_path / "m"
    magic.mkdir()
    (magic / "t10k-images-idx3-ubyte").write_bytes(b"\x12\x34\x08\x03" + b"\x00" * 40)
    write_idx(magic / "t10k-labels-idx1-ubyte", labels)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    a_file = tmp_path / "a-file"
    a_file.write_text("not MNIST")
    cases = [
        (truncated, "cannot read"),
        (magic, "bad magic number"),
        (fifo, f"--data-dir {fifo} is not a folder"),  # it warned and trained on the fallback
        (a_file, f"--data-dir {a_file} is not a folder"),
        (idx_pair(tmp_path / "l", images, labels + 3), "label(s) outside 0-9"),
        (idx_pair(tmp_path / "r", images, np.r_[labels[:-1] % 9, 9]), "fewer than 2 times"),
        (idx_pair(tmp_path / "c", images, labels[:-1]), "200 images but"),
        (idx_pair(tmp_path / "s", images[:30], labels[:30]), "too few to split"),
    ]
    for folder, message in cases:
        argv = ["train", "mnist", "--data-dir", folder, "--no-download", "--quiet"]
        assert_clean_failure(main, argv, capsys, message, root=tmp_path)
    assert not (tmp_path / "runs").exists()


def test_bad_flags_and_outputs(capsys, tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    cases = [
        (["train", "mnist", "--epochs", "0"], "--epochs: '0' is outside 1.."),
        (["train", "mnist", "--out", a_file], "is a file, not a folder"),
        (["train", "mnist", "--out", "/proc/x"], "cannot write in /proc"),
        (["train", "--resume", "latest"], "no checkpoints/last.pt"),
        (["predict", "loan", "--run", tmp_path, "--csv", a_file], "train loan"),
    ]
    for argv, message in cases:
        assert_clean_failure(main, argv, capsys, message, root=tmp_path)


def test_predict_without_required_flags_is_refused(capsys, tmp_path):
    assert_clean_failure(main, ["predict", "loan"], capsys, "needs --run", root=tmp_path)


def test_malicious_model_files_are_refused_and_never_run(capsys, tmp_path, loan_csv):
    import skops.io as sio
    from sklearn.preprocessing import FunctionTransformer

    marker = tmp_path / "pwned"
    rows = tmp_path / "rows.csv"
    make_loans(5).drop(columns=["not.fully.paid"]).to_csv(rows, index=False)

    legacy = tmp_path / "legacy"  # an old run folder with only a (crafted) joblib pickle
    legacy.mkdir()
    (legacy / "loan_model.joblib").write_bytes(pickle.dumps({"pipeline": RunsCommand(marker)}))
    renamed = tmp_path / "renamed"  # the pickle under the new name
    renamed.mkdir()
    (renamed / "loan_model.skops").write_bytes(pickle.dumps({"pipeline": RunsCommand(marker)}))
    foreign = tmp_path / "foreign"  # a real skops file naming a type no loan model holds
    foreign.mkdir()
    sio.dump({"pipeline": FunctionTransformer(os.system), "threshold": 0.5}, foreign / "m.skops")
    os.rename(foreign / "m.skops", foreign / "loan_model.skops")
    cases = [
        (legacy, "is a pickle, which can run code"),
        (renamed, "is not a skops file"),
        (foreign, "refers to types a loan model never holds (posix.system"),
    ]
    for folder, message in cases:
        argv = ["predict", "loan", "--run", folder, "--csv", rows]
        assert_clean_failure(main, argv, capsys, message)
    assert not marker.exists()
    # the same pickle DOES run code when unpickled, which is why it is never unpickled
    pickle.loads((legacy / "loan_model.joblib").read_bytes())
    assert marker.exists()


def test_bad_rows_at_predict_time(capsys, tmp_path, loan_csv):
    out = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "loan",
                "--data",
                str(loan_csv),
                "--out",
                str(out),
                "--quiet",
                "--no-eda",
                "--folds",
                "2",
            ]
        )
        == 0
    )
    capsys.readouterr()
    rows = make_loans(5).drop(columns=["not.fully.paid"])
    cases = [
        (rows.assign(purpose="space_travel"), "space_travel"),
        (rows.assign(fico=-np.inf), "must be finite"),
        (rows.drop(columns=["purpose"]), "lacks the column(s) purpose"),
    ]
    for i, (frame, message) in enumerate(cases):
        path = tmp_path / f"rows{i}.csv"
        pd.DataFrame(frame).to_csv(path, index=False)
        assert_clean_failure(
            main, ["predict", "loan", "--run", out, "--csv", path], capsys, message
        )


# --- hostile files and huge inputs ------------------------------------------------------------


def test_every_numeric_flag_is_checked_when_parsed(capsys):
    from intro_nn.cli import COMMANDS
    from testkit import assert_numeric_flags_checked

    assert assert_numeric_flags_checked(main, COMMANDS, capsys) > 15
    for argv in (["train", "--max-minutes", "0"], ["train", "--cv-seed", "-1"]):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2 and argv[1] in capsys.readouterr().err


def test_loan_form_values_follow_the_flag_rules():
    from intro_nn.demo import loan_row
    from intro_nn.loan_data import NUMERIC
    from shared.errors import UserError

    good = dict(zip(NUMERIC, DEFAULT_FORM, strict=True))
    for value, message in (
        ("abc", "needs a number"),
        (float("nan"), "not a finite number"),
        (None, "needs a number"),
        (2**70, "too large an integer"),
        (1e9, "must lie between"),
    ):
        with pytest.raises(UserError, match=message):
            loan_row("credit_card", {**good, "fico": value})
    assert len(loan_row("credit_card", {**good, "fico": "707"})) == 1


DEFAULT_FORM = [1, 0.1221, 268.95, 10.93, 12.67, 707, 4140, 8596, 46.3, 1, 0, 0]


def test_crafted_mnist_checkpoints(tmp_path):
    import torch

    from intro_nn.demo import DigitModel
    from intro_nn.mnist_models import build_model
    from shared.errors import UserError
    from shared.runs import save_checkpoint

    model = build_model("mlp", [16], [4], 0.0)
    config = {"model": "mlp", "mlp_widths": [16], "cnn_channels": [4], "dropout": 0.0}
    base = {"model": model.state_dict(), "config": config, "step": 1, "optimizer": {}}
    base["scheduler"] = {}
    cases = {
        "huge": ({**base, "config": {**config, "mlp_widths": [60000]}}, "do not fit"),
        "giant": ({**base, "config": {**config, "mlp_widths": [10**9]}}, "not an intro-nn"),
        "deep": ({**base, "config": {**config, "mlp_widths": [8] * 100000}}, "not an intro-nn"),
        "kind": ({**base, "config": {**config, "model": "rnn"}}, "not an intro-nn"),
        "type": ({**base, "config": "mlp"}, "not an intro-nn"),
        "weights": ({**base, "model": {"w": torch.zeros(1)}}, "do not fit"),
    }
    for name, (payload, message) in cases.items():
        path = save_checkpoint(tmp_path / f"{name}.pt", payload, project="intro-nn")
        with pytest.raises(UserError, match=message):
            DigitModel(path, torch.device("cpu"))
    ok = save_checkpoint(tmp_path / "ok.pt", base, project="intro-nn")
    assert DigitModel(ok, torch.device("cpu")).name == "mlp"


def test_random_loan_csvs_are_one_message(tmp_path):
    """Random bytes, and real headers over random cells: a validated table or one UserError."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from intro_nn.loan_data import read_loans
    from shared.errors import UserError

    header = ",".join(make_loans(3).columns)
    cell = st.text(alphabet='0123456789.-eEnaif ,"x', max_size=6)

    @settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
    @given(raw=st.binary(max_size=512), cells=st.lists(cell, max_size=40), use_raw=st.booleans())
    def check(raw, cells, use_raw):
        path = tmp_path / "loans.csv"
        if use_raw:
            path.write_bytes(raw)
        else:
            path.write_text(header + "\n" + ",".join(cells) + "\n")
        try:
            table = read_loans(path)
        except UserError:
            return
        assert len(table) > 0

    check()


def test_data_dir_may_name_the_folder_holding_the_loan_table(capsys, tmp_path, monkeypatch):
    """Offline: --data-dir pointing at the folder of loan_data.csv works; a failed download says
    which flag works and leaves no empty loan/ folder."""
    import intro_nn.loan_data as loan_data

    folder = tmp_path / "mine"
    folder.mkdir()
    make_loans(50).to_csv(folder / "loan_data.csv", index=False)
    assert loan_data.fetch_loan_csv(None, folder) == folder / "loan_data.csv"
    monkeypatch.setattr(loan_data, "LOAN_URLS", ["http://127.0.0.1:9/loan_data.csv"])
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["train", "loan", "--data-dir", str(empty), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "could not download" in err and "Traceback" not in err
    assert err.rstrip().endswith(
        "or pass --data FILE (or --data-dir DIR, a folder holding loan_data.csv)"
    )
    assert list(empty.iterdir()) == [] and not (tmp_path / "run").exists()


def test_data_sample_offline_names_all_it_fetches_and_leaves_nothing(tmp_path, monkeypatch, capsys):
    from intro_nn import loan_data

    monkeypatch.setattr(loan_data, "LOAN_URLS", ["http://127.0.0.1:9/loan_data.csv"])
    root = tmp_path / "data"
    assert main(["data", "sample", "--data-dir", str(root)]) == 2
    err = capsys.readouterr().err
    assert "loan_data.csv" in err and "MNIST's test pair" in err and "t10k-images" in err
    assert "no network (connection refused)" in err and "Traceback" not in err
    assert not root.exists() or list(root.rglob("*")) == []


def test_a_failed_mnist_download_leaves_no_empty_folder(tmp_path, monkeypatch, capsys):
    import torchvision

    from intro_nn.mnist_data import download

    def offline_mnist(root, train, download):  # what torchvision does offline
        (Path(root) / "MNIST" / "raw").mkdir(parents=True)
        try:
            raise OSError("[Errno -3] Temporary failure in name resolution")
        except OSError as exc:
            raise RuntimeError("Error downloading train-images-idx3-ubyte.gz:\n") from exc

    monkeypatch.setattr(torchvision.datasets, "MNIST", offline_mnist)
    assert download(tmp_path, quiet=True) is None
    assert list(tmp_path.iterdir()) == []
    assert "could not download MNIST" in capsys.readouterr().err
