"""``intro-nn export mnist``: the MNIST network as ONNX, with a JSON sidecar of its labels and the
exact preprocessing.

The graph takes ``image``: (batch, 1, 28, 28) float32 in [0, 1], white ink on black as MNIST's
digits are (the batch axis is dynamic), normalises it inside, and returns the logits and the
softmax probabilities over the digits 0-9. How to turn a drawing or a photo into that image is in
the sidecar (and in ``inference.read_digit_image``).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from intro_nn.config import ExportConfig
from intro_nn.inference import DIGITS, MEAN, PROJECT, STD, DigitModel, has_mnist, normalize
from shared.checkpoint import checkpoint_in
from shared.demo import find_run
from shared.extras import require
from shared.files import atomic_dir, require_new_folder, write_json
from shared.onnx_export import export_onnx

MODEL_FILE = "model.onnx"
SIDECAR_FILE = "model.json"
FORMAT = "intro-nn-mnist-onnx-1"


def require_onnx(*modules: str) -> None:
    require(modules, "intro-nn", "export", "ONNX")


class NormalizedDigits(torch.nn.Module):
    """(N, 1, 28, 28) in [0, 1] -> (logits, probabilities), MNIST's normalisation inside."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.model(normalize(image))
        return logits, logits.softmax(-1)


PREPROCESSING = {
    "image_size": 28,
    "value_range": [0.0, 1.0],
    "polarity": "white ink (1.0) on black (0.0)",
    "normalisation": {"mean": MEAN, "std": STD, "where": "inside the graph: (x - mean) / std"},
    "steps": [
        "gray = mean of the RGB channels (or the alpha channel of a transparent drawing)",
        "ink in [0, 1]: for a photo, the paper is the median grey level; ink = distance from "
        "the paper scaled by the darkest (light paper) or lightest (dark paper) pixel; values "
        "under 0.25 are 0",
        "crop to the ink's bounding box (ink > 0.1), scale it to fit 20x20 keeping its aspect "
        "(Lanczos)",
        "place it in 28x28 so that its centre of mass is at the centre (14, 14)",
        "divide by 255 if the pixels are 0-255",
    ],
}


def export_mnist(checkpoint: Path, out: Path) -> dict:
    require_onnx("onnx", "onnxscript", "onnxruntime")
    require_new_folder(out)
    digits = DigitModel(checkpoint, torch.device("cpu"))
    wrapper = NormalizedDigits(digits.model).eval()
    example = torch.rand(2, 1, 28, 28)
    sidecar = {
        "format": FORMAT,
        "model": digits.name,
        "labels": DIGITS,
        "input": {"name": "image", "shape": ["batch", 1, 28, 28]},
        "outputs": ["logits", "probabilities"],
        "preprocessing": PREPROCESSING,
        "checkpoint": str(checkpoint),
    }
    with atomic_dir(out) as staging:  # a failed export leaves no folder, a half-written one never
        export_onnx(wrapper, example, staging / MODEL_FILE, "image", ["logits", "probabilities"])
        write_json(staging / SIDECAR_FILE, sidecar)
    return {
        "onnx": str(out / MODEL_FILE),
        "sidecar": str(out / SIDECAR_FILE),
        "model": digits.name,
        "bytes": (out / MODEL_FILE).stat().st_size,
    }


def export_command(cfg: ExportConfig) -> int:
    """``intro-nn export mnist``: the newest run's digits model (or ``--checkpoint``/``--run``)."""
    served = find_run(PROJECT, cfg, train_command="intro-nn train mnist", has=has_mnist)
    print(json.dumps(export_mnist(served.checkpoint or checkpoint_in(served.run), cfg.out)))
    return 0
