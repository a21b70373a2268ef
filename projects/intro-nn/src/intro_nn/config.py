"""intro-nn's command configurations (each field is a CLI flag).

``train`` has two groups of flags, one per part: MNIST (PyTorch) and loans (scikit-learn); each name
says which part it belongs to where both parts have such a thing (``--mlp-widths`` is the MNIST
MLP's, ``--loan-hidden`` the loan MLP's).
"""

from __future__ import annotations

from dataclasses import InitVar, dataclass
from pathlib import Path
from typing import Literal

from shared.config import SEED_RANGE, DemoOptions, RunConfig, apply_defaults, arg
from shared.errors import UserError

MNIST, LOAN = "MNIST (PyTorch)", "loans (scikit-learn)"


@dataclass
class TrainConfig(RunConfig):
    target: Literal["all", "loan", "mnist"] = arg(
        "all",
        "what to train: loan (scikit-learn), mnist (PyTorch), or all (both)",
        positional=True,
    )
    # --- MNIST (PyTorch) ---
    model: Literal["mlp", "cnn"] = arg("mlp", "MNIST network", group=MNIST)
    epochs: int | None = arg(
        None, "MNIST training epochs (default: 30 for mlp, 20 for cnn)", group=MNIST
    )
    batch_size: int = arg(128, "MNIST batch size", group=MNIST)
    lr: float = arg(3e-3, "peak learning rate of the OneCycle schedule (AdamW)", group=MNIST)
    weight_decay: float = arg(1e-4, "AdamW weight decay", group=MNIST)
    mlp_widths: tuple[int, ...] = arg(
        (512, 256), "hidden widths of the MNIST MLP", group=MNIST, aliases=("--hidden",)
    )
    cnn_channels: tuple[int, ...] = arg(
        (16, 32, 32),
        "channels of the MNIST CNN's three conv blocks",
        group=MNIST,
        aliases=("--channels",),
    )
    dropout: float = arg(0.2, "dropout probability", group=MNIST)
    batch_norm: bool = arg(
        True, "BatchNorm in hidden layers (SyncBatchNorm under torchrun on CUDA)", group=MNIST
    )
    augment: bool = arg(
        True, "random rotation/scale/shift of training digits, on the device", group=MNIST
    )
    val_fraction: float = arg(
        0.1, "share of the training digits held out for validation", group=MNIST
    )
    max_minutes: float | None = arg(
        None, "stop MNIST training after this many minutes", group=MNIST, above=0
    )
    sklearn: bool = arg(
        True, "also fit scikit-learn's MLPClassifier on the same MNIST split", group=MNIST
    )
    download: bool = arg(True, "download data sets that are not found locally")
    # --- loans (scikit-learn) ---
    data: Path | None = arg(None, "loan_data.csv to use instead of the downloaded copy", group=LOAN)
    folds: int = arg(5, "stratified cross-validation folds", group=LOAN)
    cv_seed: int = arg(
        42,
        "seed of the shuffled stratified folds (the same folds for every model)",
        group=LOAN,
        **SEED_RANGE,
    )
    loan_hidden: tuple[int, ...] = arg(
        (32,), "hidden widths of the loan MLP", group=LOAN, aliases=("--mlp-hidden",)
    )
    loan_alpha: float = arg(
        30.0, "L2 penalty of the loan MLP", group=LOAN, aliases=("--mlp-alpha",)
    )
    loan_solver: Literal["lbfgs", "adam"] = arg(
        "lbfgs",
        "loan MLP solver (adam early-stops on validation log-loss)",
        group=LOAN,
        aliases=("--mlp-solver",),
    )
    eda: bool = arg(True, "draw the loan EDA figures", group=LOAN)

    given: InitVar[frozenset[str] | None] = None  # the typed flags (shared.cli fills it)

    def __post_init__(self, given: frozenset[str] | None) -> None:
        apply_defaults(self, {"epochs": 30 if self.model == "mlp" else 20}, given)
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
        if len(self.cnn_channels) != 3 or min(self.cnn_channels) < 1:
            raise UserError("--cnn-channels takes three positive numbers, e.g. 16 32 32")
        if not self.mlp_widths or min(self.mlp_widths) < 1:
            raise UserError("--mlp-widths takes one or more positive widths, e.g. 512 256")
        if not self.loan_hidden or min(self.loan_hidden) < 1 or self.loan_alpha < 0:
            raise UserError("--loan-hidden needs positive widths and --loan-alpha a value >= 0")


@dataclass
class PredictConfig:
    target: Literal["loan", "mnist"] = arg(
        "loan",
        "what to predict: loan (rows of a CSV) or mnist (images of handwritten digits)",
        positional=True,
    )
    run: Path | None = arg(
        None,
        "a run folder of 'intro-nn train' (loan: or its loan_model.skops; mnist: default the "
        "newest run with an MNIST checkpoint)",
        aliases=("--model",),
    )
    csv: Path | None = arg(
        None, "loan: CSV of loan rows (same columns as loan_data.csv, target optional)"
    )
    format: Literal["csv", "json"] = arg("csv", "loan: output format (mnist always prints JSON)")
    image: list[Path] = arg(
        default_factory=list,
        help="mnist: image files of one digit each (PNG, JPEG, ...; any size; dark ink on light "
        "paper or the reverse)",
    )
    checkpoint: Path | None = arg(None, "mnist: a checkpoint of 'intro-nn train mnist'")
    device: Literal["auto", "cpu", "cuda", "mps"] = arg("auto", "mnist: where to run")


@dataclass
class ExportConfig:
    target: Literal["mnist"] = arg("mnist", "what to export (mnist)", positional=True)
    checkpoint: Path | None = arg(None, "a checkpoint of 'intro-nn train mnist'")
    run: Path | None = arg(None, "a run folder (default: the newest run with an MNIST model)")
    out: Path | None = arg(None, "folder to write model.onnx and model.json into", required=True)
    format: Literal["onnx"] = arg("onnx", "export format")


@dataclass
class BenchConfig(RunConfig):
    epochs: int = arg(2, "MNIST epochs to time per path")
    batch_size: int = arg(128, "MNIST batch size")
    workers: int = arg(2, "DataLoader workers for the torchvision path")


@dataclass
class DemoConfig(DemoOptions):
    """Serve the MNIST network and the loan model in a browser page (Gradio, local only)."""

    loan_run: Path | None = arg(
        None,
        "run folder of the loan model (default: --run if it holds one, else the newest loan run)",
        group="demo",
    )
