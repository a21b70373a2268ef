"""intro-nn's command configurations (each field is a CLI flag).

``train`` has two groups of flags, one per part: MNIST (PyTorch) and loans (scikit-learn); each name
says which part it belongs to where both parts have such a thing (``--mlp-widths`` is the MNIST
MLP's, ``--loan-hidden`` the loan MLP's).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from shared.cli import SEED_RANGE, DemoOptions, RunConfig, ServeBenchOptions, ServeOptions, arg

MNIST, LOAN = "MNIST (PyTorch)", "loans (scikit-learn)"


@dataclass
class TrainConfig(RunConfig):
    target: Literal["all", "loan", "mnist"] = arg(
        "all",
        "what to train: loan (scikit-learn), mnist (PyTorch), or all (both)",
        positional=True,
    )
    # --- MNIST (PyTorch) ---
    model: Literal["mlp", "cnn"] = arg(
        "mlp",
        "MNIST network",
        group=MNIST,
        sets={"mlp": {"epochs": 30}, "cnn": {"epochs": 20}},  # the MLP learns slower per epoch
    )
    epochs: int | None = arg(
        None, "MNIST training epochs (default: 30 for mlp, 20 for cnn)", group=MNIST, low=1
    )
    batch_size: int = arg(128, "MNIST batch size", group=MNIST, low=1)
    lr: float = arg(
        3e-3, "peak learning rate of the OneCycle schedule (AdamW)", group=MNIST, above=0
    )
    weight_decay: float = arg(1e-4, "AdamW weight decay", group=MNIST)
    mlp_widths: tuple[int, ...] = arg(
        (512, 256),
        "hidden widths of the MNIST MLP",
        group=MNIST,
        aliases=("--hidden",),
        low=1,
        items=(1, None),
    )
    cnn_channels: tuple[int, ...] = arg(
        (16, 32, 32),
        "channels of the MNIST CNN's three conv blocks",
        group=MNIST,
        aliases=("--channels",),
        low=1,
        items=(3, 3),
    )
    dropout: float = arg(0.2, "dropout probability", group=MNIST, low=0, high=0.99)
    batch_norm: bool = arg(
        True, "BatchNorm in hidden layers (SyncBatchNorm under torchrun on CUDA)", group=MNIST
    )
    augment: bool = arg(
        True, "random rotation/scale/shift of training digits, on the device", group=MNIST
    )
    val_fraction: float = arg(
        0.1, "share of the training digits held out for validation", group=MNIST, above=0, high=0.5
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
    folds: int = arg(5, "stratified cross-validation folds", group=LOAN, low=2)
    cv_seed: int = arg(
        42,
        "seed of the shuffled stratified folds (the same folds for every model)",
        group=LOAN,
        **SEED_RANGE,
    )
    loan_hidden: tuple[int, ...] = arg(
        (32,),
        "hidden widths of the loan MLP",
        group=LOAN,
        aliases=("--mlp-hidden",),
        low=1,
        items=(1, None),
    )
    loan_alpha: float = arg(
        30.0, "L2 penalty of the loan MLP", group=LOAN, aliases=("--mlp-alpha",), low=0
    )
    loan_solver: Literal["lbfgs", "adam"] = arg(
        "lbfgs",
        "loan MLP solver (adam early-stops on validation log-loss)",
        group=LOAN,
        aliases=("--mlp-solver",),
    )
    eda: bool = arg(True, "draw the loan EDA figures", group=LOAN)


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
class BenchConfig(RunConfig, ServeBenchOptions):
    epochs: int = arg(2, "MNIST epochs to time per path")
    batch_size: int = arg(128, "MNIST batch size")
    workers: int = arg(2, "DataLoader workers for the torchvision path")
    checkpoint: Path | None = arg(
        None, "--serve: the MNIST checkpoint to serve (default: the newest run holding one)"
    )


@dataclass
class DemoConfig(DemoOptions):
    """Serve the MNIST network and the loan model in a browser page (Gradio, local only)."""

    loan_run: Path | None = arg(
        None,
        "run folder of the loan model (default: --run if it holds one, else the newest loan run)",
        group="demo",
    )


@dataclass
class ServeConfig(ServeOptions):
    """The MNIST network and the loan model over HTTP for programs: POST /v1/predict with pixels,
    a digit photo or a loan row; /health and /metrics."""

    loan_run: Path | None = arg(
        None,
        "run folder of the loan model (default: --run if it holds one, else the newest loan run)",
        group="serve",
    )
