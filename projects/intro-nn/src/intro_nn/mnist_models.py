"""The two MNIST networks: a fully connected MLP and a small convolutional net."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def norm_1d(width: int, batch_norm: bool) -> nn.Module:
    return nn.BatchNorm1d(width) if batch_norm else nn.Identity()


class Dropout(nn.Dropout):
    """``nn.Dropout`` with a cheaper mask on the CPU.

    PyTorch's CPU dropout draws its mask with ``bernoulli_``, a large share of a small model's
    training step. Comparing uniform draws with ``p`` gives the same distribution (tested) in less
    than half the time (measured: intro-nn and austen-net NOTES.md). CUDA keeps its fused kernel.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0 or self.inplace or x.device.type != "cpu":
            return super().forward(x)
        if self.p == 1.0:
            return x * 0.0
        keep = torch.rand(x.shape, device=x.device) >= self.p
        return x * keep.to(x.dtype).mul_(1.0 / (1.0 - self.p))


class MLP(nn.Module):
    """784 -> widths... -> 10, each hidden layer Linear, BatchNorm, ReLU, Dropout."""

    def __init__(
        self, widths: Sequence[int] = (512, 256), dropout: float = 0.2, batch_norm: bool = True
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        fan_in = 28 * 28
        for width in widths:
            layers += [
                nn.Linear(fan_in, width),
                norm_1d(width, batch_norm),
                nn.ReLU(),
                Dropout(dropout),
            ]
            fan_in = width
        layers.append(nn.Linear(fan_in, 10))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


def conv_block(c_in: int, c_out: int, batch_norm: bool = True) -> nn.Sequential:
    norm = nn.BatchNorm2d(c_out) if batch_norm else nn.Identity()
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=not batch_norm), norm, nn.ReLU())


class CNN(nn.Module):
    """Three conv blocks (28 -> 14 -> 7) with max-pooling, then a small classifier head."""

    def __init__(
        self, channels: Sequence[int] = (16, 32, 32), dropout: float = 0.2, batch_norm: bool = True
    ) -> None:
        super().__init__()
        c1, c2, c3 = channels
        self.features = nn.Sequential(
            conv_block(1, c1, batch_norm),
            nn.MaxPool2d(2),
            conv_block(c1, c2, batch_norm),
            nn.MaxPool2d(2),
            conv_block(c2, c3, batch_norm),
        )
        self.head = nn.Sequential(
            nn.Flatten(),
            Dropout(dropout),
            nn.Linear(c3 * 7 * 7, 128),
            nn.ReLU(),
            Dropout(dropout),
            nn.Linear(128, 10),
        )

    def forward(self, x):
        return self.head(self.features(x))


def build_model(
    name: str,
    widths: Sequence[int],
    channels: Sequence[int],
    dropout: float,
    batch_norm: bool = True,
) -> nn.Module:
    if name == "mlp":
        return MLP(widths, dropout, batch_norm)
    if name == "cnn":
        return CNN(channels, dropout, batch_norm)
    raise ValueError(f"unknown model {name!r}")
