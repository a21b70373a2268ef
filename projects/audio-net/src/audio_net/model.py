"""The genre classifiers: normalised log-mel windows into a one-channel ResNet18 (shared.resnet,
ImageNet weights where they exist) or a small CNN built for training from scratch on small data;
or Kaldi filter-bank windows into the Audio Spectrogram Transformer pretrained on AudioSet
(``audio_net.ast_backbone``). A clip's prediction is the mean of its windows' logits
(``clip_logits``); ``evaluate_windows`` scores windows and clips at once."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from shared.resnet import resnet18_one_channel

BACKBONES = ("resnet18", "cnn", "ast")


class SmallCNN(nn.Module):
    """Four conv blocks (3x3 conv, BatchNorm, ReLU, 2x2 max-pool: 128x130 -> 8x8), then the mean
    over frequency and the mean and max over time, dropout and one linear layer.

    About 0.1M parameters against ResNet18's 11M: what 40 training clips can fit without
    memorising them. Convolutions share weights along the mel axis, so a pitch-shifted pattern
    is the same pattern (the pitch-shift augmentation then teaches that it is the same genre).
    """

    def __init__(self, num_classes: int, width: int = 16, dropout: float = 0.3) -> None:
        super().__init__()
        widths = [1, width, 2 * width, 4 * width, 4 * width]
        self.features = nn.Sequential(
            nn.BatchNorm2d(1),
            *[
                nn.Sequential(
                    nn.Conv2d(a, b, 3, padding=1, bias=False),
                    nn.BatchNorm2d(b),
                    nn.ReLU(inplace=True),
                    nn.MaxPool2d(2),
                )
                for a, b in zip(widths[:-1], widths[1:], strict=True)
            ],
        )
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(2 * widths[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(x).mean(dim=2)  # (N, C, T'): frequency pooled
        return self.fc(self.drop(torch.cat([h.mean(-1), h.amax(-1)], dim=-1)))


def build_backbone(
    name: str,
    num_classes: int,
    pretrained: bool = False,
    weights: Path | None = None,
    ast_config=None,
) -> nn.Module:
    """A backbone with random weights (or ImageNet's for ``resnet18`` with ``pretrained``);
    ``ast`` is built from its transformers ``ASTConfig`` (its pretrained weights come from
    ``audio_net.ast_backbone.pretrained_backbone``)."""
    if name == "ast":
        from audio_net.ast_backbone import ASTBackbone  # transformers: the pretrained extra

        return ASTBackbone(ast_config)
    if name == "resnet18":
        return resnet18_one_channel(num_classes, pretrained, weights)
    if name == "cnn":
        return SmallCNN(num_classes)
    raise ValueError(f"unknown model {name!r}: use one of {', '.join(BACKBONES)}")


class SpectrogramClassifier(nn.Module):
    """Normalises (N, mels, frames) spectrograms with the training set's statistics (AST: its
    pretraining's, (x - mean) / (2 std)), then a backbone whose last layer is ``fc`` (the head that
    a frozen-backbone phase trains alone)."""

    def __init__(self, backbone: nn.Module, mean: float = 0.0, std: float = 1.0) -> None:
        super().__init__()
        self.backbone = backbone
        self.register_buffer("mean", torch.tensor(float(mean)))
        self.register_buffer("std", torch.tensor(float(std)))

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        return (x.float() - self.mean) / self.std

    def forward(self, x_normalised: torch.Tensor) -> torch.Tensor:
        return self.backbone(x_normalised.unsqueeze(1))

    def head_parameters(self) -> list[nn.Parameter]:
        return list(self.backbone.fc.parameters())

    def body_parameters(self) -> list[nn.Parameter]:
        head = {id(p) for p in self.head_parameters()}
        return [p for p in self.parameters() if id(p) not in head]


# -- a clip's prediction: the mean of its windows' logits --------------------------------------

WINDOW_VALUES_PER_BATCH = 1 << 22  # 4M input values: 252 log-mel windows, 32 of AST's


@torch.no_grad()
def window_logits(model, normalise, x: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
    """Logits of windows ``x``, a batch at a time: by default as many windows as hold
    ``WINDOW_VALUES_PER_BATCH`` values (AST's 1024-frame windows go 32 at a time, not 256)."""
    model.eval()
    batch_size = batch_size or max(1, WINDOW_VALUES_PER_BATCH // max(x[0].numel(), 1))
    return torch.cat(
        [model(normalise(x[i : i + batch_size])).float() for i in range(0, len(x), batch_size)]
    )


def clip_logits(logits: torch.Tensor, clip_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean of each clip's window logits; returns (clip ids, clip logits)."""
    ids, inverse = torch.unique(clip_ids, return_inverse=True)
    sums = torch.zeros(len(ids), logits.shape[1], device=logits.device).index_add_(
        0, inverse, logits
    )
    counts = torch.bincount(inverse, minlength=len(ids)).clamp_min(1)
    return ids, sums / counts[:, None]


def evaluate_windows(
    model, normalise, x, y, clip_ids, batch_size: int | None = None
) -> dict[str, float]:
    if len(y) == 0:
        raise ValueError("evaluate_windows needs at least one window")
    logits = window_logits(model, normalise, x, batch_size)
    ids, per_clip = clip_logits(logits, clip_ids)
    clip_true = torch.zeros(int(clip_ids.max()) + 1, dtype=torch.long, device=y.device).index_put_(
        (clip_ids,), y
    )[ids]
    return {
        "loss": float(F.cross_entropy(logits, y)),
        "window_accuracy": float((logits.argmax(1) == y).float().mean()),
        "clip_accuracy": float((per_clip.argmax(1) == clip_true).float().mean()),
    }
