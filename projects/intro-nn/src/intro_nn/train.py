"""``intro-nn train loan|mnist|all``: the loan model (scikit-learn, ``loan.py``), the digits
(PyTorch), or both into one run folder.

``train`` reads top to bottom as a run happens: the device, the digits split into training,
validation and test (all on the device: batches are sliced there), the MLP or the CNN, AdamW with
the OneCycle schedule, the run folder, shared's loop (``fit``: on-device augmentation, ``best.pt``
chosen on the validation digits, exact resume), then the test digits scored once, scikit-learn's
MLPClassifier on the same split for comparison, and the figures. Everything that can refuse the
command happens before the run folder exists.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import confusion_matrix
from sklearn.neural_network import MLPClassifier
from torch.optim import AdamW
from torch.optim.lr_scheduler import OneCycleLR

from intro_nn.config import TrainConfig
from intro_nn.inference import CHECKPOINT_KEYS, DIGITS, PROJECT, normalize
from intro_nn.loan import load_loan_table, train_loan
from intro_nn.mnist_data import Digits, load_digits, stratified_split
from intro_nn.mnist_models import build_model
from shared.checkpoint import read_resume
from shared.device import is_main, seeded_device, world_size
from shared.errors import UserError
from shared.plots import (
    confusion_matrix_figure,
    image_grid,
    label_colors,
    true_pred_titles,
)
from shared.runs import Run
from shared.training import Cadence, EpochBatches, Fitted, Plot, fit

log = logging.getLogger(__name__)

# step s's random affine transforms draw from a generator seeded (seed, AFFINE_STREAM + s): a
# stream apart from the batch order's, both pure functions of the step (exact resume)
AFFINE_STREAM = 1_000_000


@dataclass
class DeviceSplit:
    """Images as float [0, 1] (N, 1, 28, 28) and labels, both already on the device."""

    x: torch.Tensor
    y: torch.Tensor

    @classmethod
    def of(cls, images: np.ndarray, labels: np.ndarray, device: torch.device) -> DeviceSplit:
        x = torch.from_numpy(np.ascontiguousarray(images)).to(device).float().div_(255).unsqueeze(1)
        return cls(x, torch.from_numpy(labels).to(device))

    def __len__(self) -> int:
        return len(self.y)


def validation_split(digits: Digits, fraction: float, seed: int):
    """Carve a stratified validation set out of the training digits (the test set stays unseen)."""
    return stratified_split(
        digits.train_images, digits.train_labels, fraction, seed, "the training digits"
    )


def random_affine(
    x: torch.Tensor,
    generator: torch.Generator,
    *,
    degrees: float = 10.0,
    shift: float = 0.1,
    scale: tuple[float, float] = (0.9, 1.1),
) -> torch.Tensor:
    """Rotate, scale and shift each image of ``x`` (N, 1, H, W) by its own random amounts.

    The random numbers come from ``generator`` (CPU), so a batch's augmentation is a function of
    the seed and the step: exact resume needs no extra state.
    """
    n = x.shape[0]
    r = torch.rand(n, 4, generator=generator)
    angle = (r[:, 0] * 2 - 1) * math.radians(degrees)
    s = scale[0] + r[:, 1] * (scale[1] - scale[0])
    tx, ty = (r[:, 2] * 2 - 1) * shift * 2, (r[:, 3] * 2 - 1) * shift * 2
    cos, sin = torch.cos(angle) / s, torch.sin(angle) / s
    theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1).to(
        device=x.device, dtype=x.dtype
    )
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, padding_mode="zeros", align_corners=False)


def digit_batches(data: DeviceSplit, batch_size: int, seed: int, augment: bool) -> EpochBatches:
    """The batches of each step: a seeded epoch order over the digits on the device, each batch
    turned by its own random affine warps (drawn from the step's generator: exact resume)."""

    def make(rows: torch.Tensor, g: torch.Generator):
        x = random_affine(data.x[rows], g) if augment else data.x[rows]
        return normalize(x), data.y[rows]

    return EpochBatches(len(data), batch_size, seed, data.x.device, make, stream=AFFINE_STREAM)


def loss_fn(model, batch):
    x, y = batch
    logits = model(x)
    loss = F.cross_entropy(logits, y, label_smoothing=0.05)
    return loss, {"acc": (logits.argmax(1) == y).float().mean()}


@torch.no_grad()
def predict_logits(model, data: DeviceSplit, batch_size: int = 2048) -> torch.Tensor:
    model.eval()
    return torch.cat(
        [model(normalize(data.x[i : i + batch_size])) for i in range(0, len(data), batch_size)]
    )


def evaluate_split(model, data: DeviceSplit) -> dict[str, float]:
    logits = predict_logits(model, data).float()
    return {
        "loss": float(F.cross_entropy(logits, data.y)),
        "acc": float((logits.argmax(1) == data.y).float().mean()),
    }


def sklearn_mlp_accuracy(
    digits_train, labels_train, test: Digits, seed: int
) -> tuple[float, float]:
    """scikit-learn's MLPClassifier on the same training digits, scored on the same test digits."""
    t0 = time.perf_counter()
    clf = MLPClassifier(
        hidden_layer_sizes=(256,),
        alpha=1e-3,
        batch_size=128,
        max_iter=30,
        early_stopping=True,
        n_iter_no_change=5,
        random_state=seed,
    )
    clf.fit(digits_train.reshape(len(digits_train), -1) / 255.0, labels_train)
    acc = clf.score(test.test_images.reshape(len(test.test_images), -1) / 255.0, test.test_labels)
    return float(acc), time.perf_counter() - t0


def draw_figures(run: Run, model, digits: Digits, test: DeviceSplit, logits: torch.Tensor) -> None:
    image_grid(
        digits.train_images[:32],
        run.figure("digits_batch.png"),
        titles=[f"label {y}" for y in digits.train_labels[:32]],
        suptitle="training digits",
    )
    pred = logits.argmax(1).cpu().numpy()
    true = test.y.cpu().numpy()
    confusion_matrix_figure(
        confusion_matrix(true, pred, labels=range(10)),
        DIGITS,
        run.figure("confusion_matrix.png"),
        title="MNIST test confusion matrix",
    )
    wrong = np.flatnonzero(pred != true)[:32]
    if len(wrong):
        image_grid(
            digits.test_images[wrong],
            run.figure("misclassified.png"),
            titles=true_pred_titles(true[wrong], pred[wrong], DIGITS),
            colors=label_colors(true[wrong], pred[wrong]),
            suptitle=f"{len(np.flatnonzero(pred != true))} misclassified test digits (first 32)",
        )


# what makes the model and its schedule: a resumed run must keep them
MNIST_SETTINGS = ("model", "epochs", "batch_size", "mlp_widths", "cnn_channels")
WHY_FIXED = "the OneCycle schedule is laid out for the whole run"


def train(cfg: TrainConfig) -> dict:
    """``intro-nn train loan|mnist|all``: returns the run's summary."""
    if cfg.target == "loan":
        return train_loan_only(cfg)
    device = seeded_device(cfg.device, cfg.seed)
    resumed = (
        read_resume(cfg, PROJECT, CHECKPOINT_KEYS, MNIST_SETTINGS, WHY_FIXED)
        if cfg.resume
        else None
    )
    loan_table = load_loan_table(cfg) if cfg.target == "all" and is_main() else None

    # the digits, split, on the device
    digits = load_digits(cfg.data_dir, seed=cfg.seed, allow_download=cfg.download, quiet=cfg.quiet)
    log.info(f"data: {digits.source}")
    xtr, xval, ytr, yval = validation_split(digits, cfg.val_fraction, cfg.seed)
    if len(ytr) < cfg.batch_size:
        raise UserError(
            f"{len(ytr)} training digits are fewer than one batch of {cfg.batch_size}: "
            "lower --batch-size or give more digits"
        )
    train_set, val = DeviceSplit.of(xtr, ytr, device), DeviceSplit.of(xval, yval, device)
    test = DeviceSplit.of(digits.test_images, digits.test_labels, device)
    log.info(
        f"mnist: {len(train_set)} train / {len(val)} validation / {len(test)} test digits on {device}"
    )

    # the model, its batches and its optimizer
    model = build_model(cfg.model, cfg.mlp_widths, cfg.cnn_channels, cfg.dropout, cfg.batch_norm)
    batches = digit_batches(train_set, cfg.batch_size, cfg.seed, cfg.augment)
    epoch = batches.steps_per_epoch
    # AdamW, fused (one kernel for every parameter) where PyTorch has the kernel: CUDA and CPU
    fused = device.type in ("cuda", "cpu")
    optimizer = AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=fused)

    # the run folder, and shared's loop
    run = Run(PROJECT, cfg.out, cfg, resume_from=resumed.path if resumed else None)
    fitted = fit(
        model,
        optimizer,
        batches,
        loss_fn,
        Cadence(
            cfg.epochs * epoch,
            steps_per_epoch=epoch,
            eval_every=epoch,
            log_every=max(1, epoch // 5),
            max_minutes=cfg.max_minutes,
        ),
        run=run,
        device=device,
        schedule=OneCycleLR(
            optimizer, max_lr=cfg.lr, total_steps=cfg.epochs * epoch, pct_start=0.25
        ),
        evaluate=lambda m: {f"val_{k}": v for k, v in evaluate_split(m, val).items()},
        precision=cfg.precision,
        compile=cfg.compile,
        resumed=resumed,
        plot=Plot(f"{cfg.model}_curves.png", f"MNIST {cfg.model}"),
        quiet=cfg.quiet,
    )
    if not is_main():
        return {}

    # the test digits, once, with the chosen weights; scikit-learn's MLP beside it
    summary = digits_summary(cfg, fitted, run, digits, train_set, val, test)
    sk_acc, sk_seconds = (
        sklearn_mlp_accuracy(xtr, ytr, digits, cfg.seed) if cfg.sklearn else (None, None)
    )
    summary["sklearn_mlp_test_accuracy"] = None if sk_acc is None else round(sk_acc, 4)
    summary["sklearn_mlp_seconds"] = None if sk_seconds is None else round(sk_seconds, 2)
    if loan_table is not None:
        summary = {"loan": train_loan(cfg, run, loan_table), "mnist": summary}
    return run.finish(summary)


def digits_summary(
    cfg: TrainConfig, fitted: Fitted, run: Run, digits: Digits, train_set, val, test
) -> dict:
    """Test accuracy of the chosen (best validation loss) model, and its figures."""
    trainer = fitted.trainer
    with trainer.autocast():
        logits = predict_logits(trainer.eval_model, test).float()
    draw_figures(run, fitted.model, digits, test, logits)
    return {
        "model": cfg.model,
        "data": digits.source,
        "n_train": len(train_set),
        "n_val": len(val),
        "n_test": len(test),
        "device": str(trainer.device),
        "world_size": world_size(),
        "test_accuracy": round(float((logits.argmax(1) == test.y).float().mean()), 4),
        "val_accuracy": round(fitted.result.get("val_acc", float("nan")), 4),
        "best_epoch": fitted.epoch,
        "epochs": trainer.epoch,
        "train_seconds": fitted.result["train_seconds"],
    }


def train_loan_only(cfg: TrainConfig) -> dict:
    """``intro-nn train loan``. The loan model is scikit-learn's (no training loop, no checkpoint
    to resume); its table is read before any run folder exists, like the digits."""
    if cfg.resume is not None:
        raise UserError(
            "--resume continues MNIST training; the loan model is refit from scratch "
            "(drop --resume, or resume with 'intro-nn train mnist --resume ...')"
        )
    table = load_loan_table(cfg)
    run = Run(PROJECT, cfg.out, cfg)
    return run.finish(train_loan(cfg, run, table))
