"""Fixtures: generated data with a learnable signal, so every end-to-end test runs without
../shared/data (the real-sample tests add a layer where that folder exists)."""

import pytest
from intro_nn_data import make_digits, make_loans

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
