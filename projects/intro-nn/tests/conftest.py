"""Fixtures: generated data with a learnable signal, so every end-to-end test runs without
../shared/data (the real-sample tests add a layer where that folder exists)."""

import pytest
from intro_nn_data import make_digits, make_loans

from intro_nn.cli import main
from intro_nn.idx import write_idx
from testkit import isolated, real_data, session_roots  # noqa: F401  (fixtures)


@pytest.fixture()
def loan_csv(tmp_path):
    path = tmp_path / "loans.csv"
    make_loans().to_csv(path, index=False)
    return path


@pytest.fixture()
def digit_folder(tmp_path):
    folder = tmp_path / "idx"
    folder.mkdir()
    images, labels = make_digits()
    write_idx(folder / "t10k-images-idx3-ubyte.gz", images)
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", labels)
    return folder


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny MNIST CNN and a loan model in two run folders, trained on generated data."""
    root = tmp_path_factory.mktemp("demo")
    folder = root / "idx"
    folder.mkdir()
    images, labels = make_digits()
    write_idx(folder / "t10k-images-idx3-ubyte.gz", images)
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", labels)
    make_loans().to_csv(root / "loans.csv", index=False)
    # two runs, one of them nested deeper under the runs root: the demo finds both
    run = root / "runs" / "intro-nn" / "20260101-000000"
    loan_run = root / "runs" / "intro-nn" / "loans" / "20260101-000001"
    loan = ["train", "loan", "--data", root / "loans.csv", "--folds", "3"]
    assert main([str(a) for a in [*loan, "--out", loan_run, "--quiet"]]) == 0
    mnist = ["train", "mnist", "--model", "cnn", "--data-dir", folder, "--epochs", "2"]
    mnist += ["--no-sklearn", "--device", "cpu", "--out", run, "--quiet"]
    assert main([str(a) for a in mnist]) == 0
    return root, run, loan_run
