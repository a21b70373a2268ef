"""The genre classifier: normalised log-mel windows into a one-channel ResNet18 (shared.resnet)."""

from __future__ import annotations

import torch
from torch import nn


class SpectrogramClassifier(nn.Module):
    """Normalises (N, mels, frames) log-mels with the training set's statistics, then ResNet18."""

    def __init__(self, backbone: nn.Module, mean: float = 0.0, std: float = 1.0) -> None:
        super().__init__()
        self.backbone = backbone
        self.register_buffer("mean", torch.tensor(float(mean)))
        self.register_buffer("std", torch.tensor(float(std)))

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        return (x.float() - self.mean) / self.std

    def forward(self, x_normalised: torch.Tensor) -> torch.Tensor:
        return self.backbone(x_normalised.unsqueeze(1))

    def head_parameters(self):
        return list(self.backbone.fc.parameters())

    def body_parameters(self):
        head = {id(p) for p in self.head_parameters()}
        return [p for p in self.parameters() if id(p) not in head]
