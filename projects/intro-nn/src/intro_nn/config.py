"""intro-nn's command configurations (each field is a CLI flag)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from shared.config import RunConfig, arg, to_jsonable


@dataclass
class TrainConfig(RunConfig):
    target: Literal["all", "loan", "mnist"] = arg(
        "all",
        "what to train: loan (scikit-learn), mnist (PyTorch), or all (both)",
        positional=True,
    )
    # --- MNIST (PyTorch) ---
    model: Literal["mlp", "cnn"] = arg("mlp", "MNIST network")
    epochs: int | None = arg(None, "MNIST training epochs (default: 30 for mlp, 20 for cnn)")
    batch_size: int = arg(128, "MNIST batch size")
    lr: float = arg(3e-3, "peak learning rate of the OneCycle schedule (AdamW)")
    weight_decay: float = arg(1e-4, "AdamW weight decay")
    hidden: tuple[int, ...] = arg((512, 256), "MLP hidden widths")
    channels: tuple[int, ...] = arg((16, 32, 32), "CNN channels of its three conv blocks")
    dropout: float = arg(0.2, "dropout probability")
    batch_norm: bool = arg(
        True, "BatchNorm in hidden layers (SyncBatchNorm under torchrun on CUDA)"
    )
    augment: bool = arg(True, "random rotation/scale/shift of training digits, on the device")
    val_fraction: float = arg(0.1, "share of the training digits held out for validation")
    max_minutes: float | None = arg(None, "stop MNIST training after this many minutes")
    sklearn: bool = arg(True, "also fit scikit-learn's MLPClassifier on the same MNIST split")
    download: bool = arg(True, "download data sets that are not found locally")
    # --- loans (scikit-learn) ---
    data: Path | None = arg(None, "loan_data.csv to use instead of the downloaded copy")
    folds: int = arg(5, "stratified cross-validation folds")
    cv_seed: int = arg(42, "seed of the shuffled stratified folds (the same folds for every model)")
    mlp_hidden: tuple[int, ...] = arg((32,), "loan MLP hidden widths")
    mlp_alpha: float = arg(30.0, "loan MLP L2 penalty")
    mlp_solver: Literal["lbfgs", "adam"] = arg(
        "lbfgs", "loan MLP solver (adam early-stops on validation log-loss)"
    )
    eda: bool = arg(True, "draw the loan EDA figures")

    def __post_init__(self) -> None:
        from shared.config import UserError

        if self.epochs is None:
            self.epochs = 30 if self.model == "mlp" else 20
        if self.epochs < 1 or self.batch_size < 1:
            raise UserError("--epochs and --batch-size must be positive integers")
        if not 0 < self.val_fraction < 0.5:
            raise UserError("--val-fraction must be between 0 and 0.5")
        if self.folds < 2:
            raise UserError("--folds must be at least 2")
        if self.lr <= 0:
            raise UserError("--lr must be positive")
        if not 0 <= self.dropout < 1:
            raise UserError("--dropout must be in [0, 1)")

    def as_checkpoint_dict(self) -> dict:
        return to_jsonable(self)


@dataclass
class PredictConfig:
    target: Literal["loan"] = arg("loan", "what to predict (loan)", positional=True)
    model: Path | None = arg(
        None, "a run folder of 'intro-nn train loan', or its loan_model.joblib"
    )
    csv: Path | None = arg(
        None, "CSV of loan rows (same columns as loan_data.csv, target optional)"
    )
    format: Literal["csv", "json"] = arg("csv", "output format")


@dataclass
class BenchConfig(RunConfig):
    epochs: int = arg(2, "MNIST epochs to time per path")
    batch_size: int = arg(128, "MNIST batch size")
    workers: int = arg(2, "DataLoader workers for the torchvision path")


@dataclass
class DataConfig:
    action: Literal["download", "check"] = arg(
        "download", "download the data sets, or check them", positional=True
    )
    data_dir: Path | None = arg(None, "data root (default: $DL_DATA_DIR, else <repo>/data)")
    quiet: bool = arg(False, "no progress bars")
