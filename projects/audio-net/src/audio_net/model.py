"""ResNet18 for one-channel log-mel windows, from ImageNet weights (or a local file, or random)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torchvision.models import ResNet18_Weights, resnet18

from shared.config import UserError


def imagenet_state_dict(weights_path: Path | None) -> dict:
    """ImageNet ResNet18 weights: a local state_dict file, else torchvision's (cached) download."""
    if weights_path is not None:
        if not weights_path.is_file():
            raise UserError(f"--weights {weights_path}: no such file")
        try:
            state = torch.load(weights_path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise UserError(
                f"--weights {weights_path} is not a readable state_dict ({exc.__class__.__name__})"
            ) from exc
        return state.get("state_dict", state) if isinstance(state, dict) else state
    try:
        return ResNet18_Weights.DEFAULT.get_state_dict(progress=False, check_hash=True)
    except Exception as exc:  # URLError, HTTPError, ssl errors, hash mismatch...
        url = ResNet18_Weights.DEFAULT.url
        raise UserError(
            f"could not get the ImageNet ResNet18 weights ({exc.__class__.__name__}): offline and not in "
            f"the torch hub cache ({torch.hub.get_dir()}/checkpoints). Download {url} by hand and pass "
            "--weights PATH, or train from random weights with --no-pretrained"
        ) from exc


def adapt_first_conv(state: dict) -> dict:
    """Average the RGB filters of conv1 into one input channel (spectrograms have one)."""
    state = dict(state)
    w = state["conv1.weight"]
    if w.shape[1] == 3:
        state["conv1.weight"] = w.mean(dim=1, keepdim=True)
    return {k: v for k, v in state.items() if not k.startswith("fc.")}


def build_resnet(num_classes: int, pretrained: bool, weights_path: Path | None = None) -> nn.Module:
    model = resnet18(weights=None)
    model.conv1 = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
    model.fc = nn.Linear(model.fc.in_features, num_classes)
    if pretrained or weights_path is not None:
        missing, unexpected = model.load_state_dict(
            adapt_first_conv(imagenet_state_dict(weights_path)), strict=False
        )
        if unexpected or set(missing) - {"fc.weight", "fc.bias"}:
            raise UserError(
                f"the weights do not fit ResNet18 (missing {missing[:3]}, unexpected {unexpected[:3]})"
            )
    return model


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
