"""``intro-nn bench``: on-device MNIST batches against a torchvision DataLoader, and loan CV time."""

from __future__ import annotations

import time
import warnings

import numpy as np
import torch
from PIL import Image
from sklearn.exceptions import ConvergenceWarning
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from intro_nn.config import BenchConfig
from intro_nn.loan import cross_validate
from intro_nn.loan_data import FEATURES, TARGET, fetch_loan_csv, read_loans
from intro_nn.loan_model import make_models
from intro_nn.mnist_data import load_digits
from intro_nn.mnist_models import MLP
from intro_nn.train import DeviceSplit, digit_batches, loss_fn
from shared.device import device_name, seed_everything, seed_worker, select_device
from shared.errors import UserError
from shared.optim import adamw
from shared.runs import Run
from shared.training import Trainer


class PilDigits(Dataset):
    """The classic path: one PIL image per sample, ToTensor + Normalize in the worker."""

    def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
        self.images, self.labels = images, labels
        self.transform = transforms.Compose(
            [transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))]
        )

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i):
        return self.transform(Image.fromarray(self.images[i], mode="L")), int(self.labels[i])


def _trainer(device) -> Trainer:
    model = MLP()
    return Trainer(model, adamw(model.parameters(), device, lr=1e-3), device=device)


def _sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_on_device(images, labels, device, epochs: int, batch_size: int) -> float:
    trainer = _trainer(device)
    batches = digit_batches(DeviceSplit.of(images, labels, device), batch_size, 0, augment=False)
    trainer.train_step(batches(0), loss_fn)  # warm-up
    _sync(device)
    t0 = time.perf_counter()
    for step in range(epochs * batches.steps_per_epoch):
        trainer.train_step(batches(step), loss_fn)
    _sync(device)
    return (time.perf_counter() - t0) / epochs


def time_dataloader(images, labels, device, epochs: int, batch_size: int, workers: int) -> float:
    trainer = _trainer(device)
    loader = DataLoader(
        PilDigits(images, labels),
        batch_size=batch_size,
        shuffle=True,
        drop_last=True,
        num_workers=workers,
        worker_init_fn=seed_worker,
        persistent_workers=workers > 0,
        pin_memory=device.type == "cuda",
    )
    x, y = next(iter(loader))
    trainer.train_step([(x.to(device), y.to(device))], loss_fn)  # warm-up (and worker start)
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(epochs):
        for x, y in loader:
            trainer.train_step(
                [(x.to(device, non_blocking=True), y.to(device, non_blocking=True))], loss_fn
            )
    _sync(device)
    return (time.perf_counter() - t0) / epochs


def loan_cv_seconds(cfg: BenchConfig) -> float | None:
    try:
        df = read_loans(fetch_loan_csv(None, cfg.data_dir, quiet=True))
    except UserError:
        return None
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        cross_validate(
            make_models((32,), 30.0, "lbfgs", 0),
            df.loc[:, list(FEATURES)],
            df[TARGET].to_numpy(),
            5,
            42,
            quiet=True,
        )
    return time.perf_counter() - t0


def run_bench(cfg: BenchConfig) -> int:
    seed_everything(cfg.seed)
    device = select_device(cfg.device)
    digits = load_digits(cfg.data_dir, seed=cfg.seed, quiet=True)
    images, labels = digits.train_images, digits.train_labels
    run = Run("intro-nn", cfg.out, cfg)
    on_device = time_on_device(images, labels, device, cfg.epochs, cfg.batch_size)
    loader = time_dataloader(images, labels, device, cfg.epochs, cfg.batch_size, cfg.workers)
    loan = loan_cv_seconds(cfg)
    run.finish(
        {
            "device": device_name(device),
            "mnist_train_digits": int(len(labels)),
            "mnist_source": digits.source,
            "batch_size": cfg.batch_size,
            "mnist_epoch_s_on_device": round(on_device, 4),
            "mnist_epoch_s_dataloader": round(loader, 4),
            "dataloader_workers": cfg.workers,
            "on_device_speedup": round(loader / on_device, 2),
            "loan_cv_s": None if loan is None else round(loan, 2),
        }
    )
    return 0
