"""``intro-nn data download|check``: the loan CSV and the MNIST digits, fetched or found."""

from __future__ import annotations

from intro_nn.loan_data import fetch_loan_csv
from intro_nn.mnist_data import load_digits
from shared.config import DataCommandConfig
from shared.progress import info


def data(cfg: DataCommandConfig) -> int:
    download = cfg.action == "download"
    info(f"loan: {fetch_loan_csv(None, cfg.data_dir, quiet=cfg.quiet, allow_download=download)}")
    digits = load_digits(cfg.data_dir, allow_download=download, quiet=cfg.quiet)
    info(f"mnist: {digits.source}")
    return 0
