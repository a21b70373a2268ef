"""``intro-nn train loan|mnist|all``: the loan model (scikit-learn, ``loan.py``), the digits
(PyTorch through the shared lifecycle: ``MnistTask``), or both into one run folder.

MNIST with PyTorch: the whole data set lives on the device, batches are sliced there.

``load_mnist`` finds the digits and splits them (before any run folder exists, so bad input leaves
nothing behind); ``train_mnist`` trains the MLP or the CNN with the shared ``Trainer``/``fit``
(OneCycle, AdamW, on-device augmentation, exact resume), then reports held-out test accuracy, fits
scikit-learn's MLPClassifier on the same split for comparison, and draws the figures.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import confusion_matrix
from sklearn.neural_network import MLPClassifier

from intro_nn.augment import random_affine
from intro_nn.config import TrainConfig
from intro_nn.inference import CHECKPOINT_KEYS, DIGITS, PROJECT, normalize
from intro_nn.loan import load_loan_table, train_loan
from intro_nn.mnist_data import Digits, load_digits, stratified_split
from intro_nn.mnist_models import build_model
from shared.batching import EpochBatches
from shared.device import make_generator
from shared.distributed import is_main, world_size
from shared.errors import UserError
from shared.lifecycle import Outcome, Plan, TrainingTask, run_training
from shared.optim import adamw, one_cycle
from shared.plots import (
    LivePlot,
    confusion_matrix_figure,
    image_grid,
    label_colors,
    true_pred_titles,
)
from shared.progress import info
from shared.runs import Run
from shared.training import Cadence, Trainer

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


class OnDeviceBatches:
    """Step -> micro-batch list. Epoch order and augmentation are functions of (seed, step)."""

    def __init__(self, data: DeviceSplit, batch_size: int, seed: int, augment: bool) -> None:
        self.data, self.seed, self.augment = data, seed, augment
        self.order = EpochBatches(len(data), batch_size, seed, data.x.device)
        self.steps_per_epoch = self.order.steps_per_epoch

    def __call__(self, step: int):
        idx = self.order.indices(step)
        x = self.data.x[idx]
        if self.augment:
            x = random_affine(x, make_generator(self.seed, AFFINE_STREAM + step))
        return [(normalize(x), self.data.y[idx])]


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


@dataclass
class MnistData:
    """The digits, split into train / validation / test, before anything is trained or written."""

    digits: Digits
    xtr: np.ndarray
    ytr: np.ndarray
    xval: np.ndarray
    yval: np.ndarray


def load_mnist(cfg: TrainConfig) -> MnistData:
    digits = load_digits(cfg.data_dir, seed=cfg.seed, allow_download=cfg.download, quiet=cfg.quiet)
    info(f"data: {digits.source}", cfg.quiet)
    xtr, xval, ytr, yval = validation_split(digits, cfg.val_fraction, cfg.seed)
    if len(ytr) < cfg.batch_size:
        raise UserError(
            f"{len(ytr)} training digits are fewer than one batch of {cfg.batch_size}: "
            "lower --batch-size or give more digits"
        )
    return MnistData(digits, xtr, ytr, xval, yval)


@dataclass
class MnistRun:
    """What ``plan`` read: the digits split and on the device, and with ``--target all`` the loan
    table (read before the run folder exists, trained into it after the digits)."""

    data: MnistData
    train: DeviceSplit
    val: DeviceSplit
    test: DeviceSplit
    loan_table: Any = None


def load_run_data(cfg: TrainConfig, device) -> MnistRun:
    """The digits, split and on the device; with ``--target all`` the loan table too."""
    loan_table = load_loan_table(cfg) if cfg.target == "all" and is_main() else None
    data = load_mnist(cfg)
    got = MnistRun(
        data,
        DeviceSplit.of(data.xtr, data.ytr, device),
        DeviceSplit.of(data.xval, data.yval, device),
        DeviceSplit.of(data.digits.test_images, data.digits.test_labels, device),
        loan_table,
    )
    info(
        f"mnist: {len(got.train)} train / {len(got.val)} validation / {len(got.test)} "
        f"test digits on {device}",
        cfg.quiet,
    )
    return got


class MnistTask(TrainingTask):
    """The digits through the shared lifecycle: the MLP or the CNN, ``best.pt`` chosen on the
    validation digits, the test digits scored once with the chosen weights; then, beside them,
    scikit-learn's MLP on the same split (``--sklearn``) and, with ``all``, the loan model into
    the same run folder, whose summary is then ``{"loan", "mnist"}``."""

    project = PROJECT
    checkpoint_keys = CHECKPOINT_KEYS
    settings_fixed_on_resume = ("model", "epochs", "batch_size", "mlp_widths", "cnn_channels")
    why_fixed_on_resume = "the OneCycle schedule is laid out for the whole run"

    def plan(self, cfg: TrainConfig, device, resumed, resume_path) -> Plan:
        got = load_run_data(cfg, device)
        model = build_model(
            cfg.model, cfg.mlp_widths, cfg.cnn_channels, cfg.dropout, cfg.batch_norm
        )
        batches = OnDeviceBatches(got.train, cfg.batch_size, cfg.seed, cfg.augment)
        steps_per_epoch = batches.steps_per_epoch
        optimizer = adamw(model.parameters(), device, lr=cfg.lr, weight_decay=cfg.weight_decay)

        def evaluate(tr: Trainer) -> dict[str, float]:
            with tr.autocast():
                m = evaluate_split(tr.eval_model, got.val)
            return {"val_loss": m["loss"], "val_acc": m["acc"]}

        return Plan(
            model=model,
            optimizer=optimizer,
            scheduler=one_cycle(optimizer, cfg.lr, cfg.epochs * steps_per_epoch),
            batch_for_step=batches,
            loss_fn=loss_fn,
            cadence=Cadence(
                cfg.epochs * steps_per_epoch,
                steps_per_epoch=steps_per_epoch,
                eval_every=steps_per_epoch,
                log_every=max(1, steps_per_epoch // 5),
                max_minutes=cfg.max_minutes,
            ),
            evaluate=evaluate,
            plot=LivePlot(f"{cfg.model}_curves.png", redraw_every=5, title=f"MNIST {cfg.model}"),
            prepared=got,
        )

    def summary(self, cfg: TrainConfig, outcome: Outcome, got: MnistRun) -> dict:
        summary = self.digits_summary(cfg, outcome, got)
        sk_acc, sk_seconds = (
            sklearn_mlp_accuracy(got.data.xtr, got.data.ytr, got.data.digits, cfg.seed)
            if cfg.sklearn
            else (None, None)
        )
        summary["sklearn_mlp_test_accuracy"] = None if sk_acc is None else round(sk_acc, 4)
        summary["sklearn_mlp_seconds"] = None if sk_seconds is None else round(sk_seconds, 2)
        if got.loan_table is None:
            return summary
        return {"loan": train_loan(cfg, outcome.run, got.loan_table), "mnist": summary}

    def digits_summary(self, cfg: TrainConfig, outcome: Outcome, got: MnistRun) -> dict:
        """Test accuracy of the chosen (best validation loss) model, and its figures."""
        digits, test, trainer = got.data.digits, got.test, outcome.trainer
        with trainer.autocast():
            logits = predict_logits(trainer.eval_model, test).float()
        draw_figures(outcome.run, outcome.model, digits, test, logits)
        return {
            "model": cfg.model,
            "data": digits.source,
            "n_train": len(got.train),
            "n_val": len(got.val),
            "n_test": len(test),
            "device": str(outcome.device),
            "world_size": world_size(),
            "test_accuracy": round(float((logits.argmax(1) == test.y).float().mean()), 4),
            "val_accuracy": round(outcome.result.get("val_acc", float("nan")), 4),
            "best_epoch": outcome.chosen_epoch,
            "epochs": trainer.epoch,
            "train_seconds": outcome.result["train_seconds"],
        }


def train_mnist(cfg: TrainConfig) -> tuple[Run, dict]:
    """``intro-nn train mnist|all``: the digits through the shared lifecycle (``MnistTask``)."""
    return run_training(MnistTask(), cfg)


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
