"""``intro-nn data download|check|sample``: the loan CSV and the MNIST digits, fetched or found.

``sample`` is what a fresh clone needs for the README's first block: the loan CSV (0.6 MB) and
MNIST's 10,000 test digits (1.6 MB), into the data root (``data/loan``, ``data/mnist``). The
gzip files of MNIST's mirrors differ byte for byte (their headers carry dates), so each download
is checked by the sha256 of the IDX data inside it.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import zlib
from pathlib import Path

from intro_nn.loan_data import fetch_loan_csv
from intro_nn.mnist_data import load_digits
from shared.cli import DataCommandConfig
from shared.download import DownloadError, fetch
from shared.files import data_root
from shared.runs import check_writable_dir

log = logging.getLogger(__name__)

MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
# sha256 of the IDX bytes inside each gzip file: MNIST's 10,000 test digits and their labels
MNIST_TEST = {
    "t10k-images-idx3-ubyte.gz": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte.gz": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}


def data(cfg: DataCommandConfig) -> int:
    if cfg.action == "sample":
        return sample(cfg.data_dir, cfg.quiet)
    download = cfg.action == "download"
    log.info(
        f"loan: {fetch_loan_csv(None, cfg.data_dir, quiet=cfg.quiet, allow_download=download)}"
    )
    digits = load_digits(cfg.data_dir, allow_download=download, quiet=cfg.quiet)
    log.info(f"mnist: {digits.source}")
    return 0


def sample(data_dir: Path | None, quiet: bool) -> int:
    """The loan CSV and MNIST's test pair, each verified, into the data root."""
    root = data_root(data_dir)
    check_writable_dir(root, "--data-dir")
    folder = root / "mnist"
    try:
        loan = fetch_loan_csv(None, data_dir, quiet=quiet)
        for name, digest in MNIST_TEST.items():
            dest = folder / name
            hint = f"put {name} in {folder}"
            fetch([m + name for m in MNIST_MIRRORS], dest, quiet=quiet, hint=hint)
            check_idx(dest, digest)
    except DownloadError as exc:
        raise DownloadError(
            f"the sample is the loan table ({root / 'loan' / 'loan_data.csv'}) and MNIST's test "
            f"pair ({', '.join(MNIST_TEST)} in {folder}); {exc}"
        ) from exc
    log.info(f"sample: the loan table in {loan}, 10,000 MNIST digits in {folder}")
    return 0


def check_idx(path: Path, digest: str) -> None:
    """The IDX data inside ``path`` (gzip) is MNIST's, else the file is removed and refused."""
    try:
        got = hashlib.sha256(gzip.decompress(path.read_bytes())).hexdigest()
    except (OSError, EOFError, zlib.error):
        got = "not gzip data"
    if got != digest:
        path.unlink(missing_ok=True)
        raise DownloadError(
            f"{path} does not hold MNIST's test data (sha256 of its IDX bytes: {got[:16]}, "
            f"expected {digest[:16]}); it was removed: run 'intro-nn data sample' again"
        )
