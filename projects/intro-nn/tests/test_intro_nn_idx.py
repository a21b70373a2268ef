import gzip

import numpy as np
import pytest

from intro_nn.idx import IdxError, read_idx, write_idx
from intro_nn.mnist_data import from_folder


def test_round_trip_raw_and_gz(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (7, 28, 28), dtype=np.uint8)
    for name in ("a-idx3-ubyte", "b-idx3-ubyte.gz"):
        assert np.array_equal(read_idx(write_idx(tmp_path / name, images), expect_ndim=3), images)


def test_header_is_checked(tmp_path):
    good = write_idx(tmp_path / "x-idx3-ubyte", np.zeros((3, 28, 28), np.uint8)).read_bytes()
    cases = {
        "bad magic": b"\x12\x34" + good[2:],
        "payload": good[:-5],  # truncated payload
        "unknown IDX data type": good[:2] + b"\x42" + good[3:],
        "expected 3 dimensions": good[:3] + b"\x02" + good[4:],
        "bad magic number empty": b"",
    }
    for expected, data in cases.items():
        path = tmp_path / "bad"
        path.write_bytes(data)
        with pytest.raises(IdxError, match=expected.split(" empty")[0]):
            read_idx(path, expect_ndim=3)


def test_corrupt_gzip_is_a_clear_error(tmp_path):
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(b"\x00\x00\x08\x03" + b"\x00" * 20)[:-6])
    with pytest.raises(IdxError, match="cannot read"):
        read_idx(path)


def test_test_pair_alone_is_split_stratified(tmp_path):
    rng = np.random.default_rng(0)
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", rng.integers(0, 256, (100, 28, 28)))
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.repeat(np.arange(10), 10))
    digits = from_folder(tmp_path, seed=0)
    assert len(digits.train_labels) == 80 and len(digits.test_labels) == 20
    assert np.bincount(digits.test_labels).tolist() == [2] * 10
    assert "only one split present" in digits.source


def test_image_label_count_mismatch(tmp_path):
    write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((5, 28, 28)))
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(4))
    with pytest.raises(IdxError, match="5 images but"):
        from_folder(tmp_path, seed=0)
