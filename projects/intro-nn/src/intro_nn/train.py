"""``intro-nn train loan|mnist|all``: the loan model (scikit-learn), the digits (PyTorch through
the shared lifecycle, ``mnist_train``), or both into one run folder."""

from __future__ import annotations

from intro_nn.config import TrainConfig
from intro_nn.inference import PROJECT
from intro_nn.loan import load_loan_table, train_loan
from intro_nn.mnist_train import train_mnist
from shared.errors import UserError
from shared.runs import Run


def train(cfg: TrainConfig) -> tuple[Run, dict]:
    """``intro-nn train loan|mnist|all``. The loan model is scikit-learn's (no training loop, no
    checkpoint to resume); its table is read before any run folder exists, like the digits."""
    if cfg.target != "loan":
        return train_mnist(cfg)
    if cfg.resume is not None:
        raise UserError(
            "--resume continues MNIST training; the loan model is refit from scratch "
            "(drop --resume, or resume with 'intro-nn train mnist --resume ...')"
        )
    table = load_loan_table(cfg)
    run = Run(PROJECT, cfg.out, cfg)
    return run, run.finish(train_loan(cfg, run, table))
