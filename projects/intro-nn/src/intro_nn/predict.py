"""``intro-nn predict loan|mnist``: default probabilities for loan rows, or the digits in images."""

from __future__ import annotations

from intro_nn.config import PredictConfig


def predict(cfg: PredictConfig) -> int:
    """Each target imports only its own stack (PyTorch for digits, scikit-learn for loans)."""
    if cfg.target == "mnist":
        from intro_nn.inference import predict_digits  # slow: torch (about 1.5 s)

        return predict_digits(cfg)
    from intro_nn.loan import predict_loan  # slow: scikit-learn and pandas

    return predict_loan(cfg)
