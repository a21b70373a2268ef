"""ResNet18 for one-channel inputs (log-mel spectrograms), from ImageNet weights, a file, or random.

torchvision is imported inside the functions: the projects that build a ResNet depend on it, the
others (austen-net) do not need it installed.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from shared.errors import UserError


def imagenet_state_dict(weights_path: Path | None) -> dict:
    """ImageNet ResNet18 weights: a local state_dict file, else torchvision's (cached) download."""
    from torchvision.models import ResNet18_Weights  # optional: a dependency of the projects

    if weights_path is not None:
        weights_path = Path(weights_path)
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
    """Average the RGB filters of conv1 into one input channel (spectrograms have one); drop fc."""
    state = dict(state)
    w = state["conv1.weight"]
    if w.shape[1] == 3:
        state["conv1.weight"] = w.mean(dim=1, keepdim=True)
    return {k: v for k, v in state.items() if not k.startswith("fc.")}


def resnet18_one_channel(
    out_features: int, pretrained: bool = False, weights_path: Path | None = None
) -> nn.Module:
    """torchvision's ResNet18 with a one-channel conv1 and an ``out_features`` head.

    ``pretrained`` (or a ``weights_path``) loads ImageNet weights into everything but the head,
    conv1's RGB filters averaged; otherwise the weights are random.
    """
    from torchvision.models import resnet18  # optional: a dependency of the projects

    model = resnet18(weights=None)
    model.conv1 = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
    model.fc = nn.Linear(model.fc.in_features, out_features)
    if pretrained or weights_path is not None:
        load_imagenet(model, weights_path)
    return model


def load_imagenet(model: nn.Module, weights_path: Path | None = None) -> None:
    """ImageNet (or a local file's) ResNet18 weights into a one-channel ResNet18, head excepted."""
    missing, unexpected = model.load_state_dict(
        adapt_first_conv(imagenet_state_dict(weights_path)), strict=False
    )
    if unexpected or set(missing) - {"fc.weight", "fc.bias"}:
        raise UserError(
            f"the weights do not fit ResNet18 (missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
