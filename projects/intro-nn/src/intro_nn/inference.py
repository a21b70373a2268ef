"""Inference for MNIST digits, apart from training: a checkpoint loaded and checked, an image of a
digit (a sketchpad drawing or a photo) made into what MNIST digits look like, and the forward.

MNIST's digits were made by cropping the ink, scaling it to fit 20x20 and centring it by its centre
of mass in 28x28; ``to_mnist`` does the same to a drawing, ``read_digit_image`` to an image file
(dark ink on light paper or the reverse, the paper's own grey level removed first).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from intro_nn import PROJECT
from intro_nn.mnist_models import build_model
from shared.checkpoint import (
    checkpoint_in,
    load_checkpoint,
    model_from_checkpoint,
    refuse_if_damaged,
)
from shared.demo import find_run
from shared.device import select_device
from shared.errors import UserError

MEAN, STD = 0.1307, 0.3081
DIGITS = list("0123456789")  # the class names
CHECKPOINT_KEYS = ("model", "optimizer", "scheduler", "step", "config")
MAX_IMAGE_PIXELS = 40_000_000  # a 40-megapixel photo; larger files are refused before decoding


def normalize(x: torch.Tensor) -> torch.Tensor:
    return (x - MEAN) / STD


def ink(image: np.ndarray) -> np.ndarray:
    """Ink in [0, 1] from a drawing: alpha where the canvas is transparent, else dark on light."""
    image = np.asarray(image, dtype=np.float32)
    if image.ndim == 2:
        gray = image
    elif image.shape[-1] == 4 and image[..., 3].min() < 255:
        return image[..., 3] / 255.0
    else:
        gray = image[..., :3].mean(-1)
    return 1.0 - gray / 255.0 if gray.mean() > 127 else gray / 255.0


def to_mnist(image: np.ndarray) -> np.ndarray:
    """What the demo receives as an MNIST digit: (28, 28) uint8, white ink on black, centred like
    the data set. Strokes on a transparent canvas are the alpha channel; anything else (a canvas
    with a background, a photo posted to the API) is read exactly as ``predict --image`` reads a
    file, so both give the same digit for the same picture."""
    image = np.asarray(image)
    empty = "the canvas is empty: draw a digit first"
    if image.ndim == 3 and image.shape[-1] == 4 and image[..., 3].min() < 255:
        return digit_from_ink(image[..., 3] / 255.0, empty)
    if image.ndim == 3:  # the same grey as Pillow's convert("L") that predict --image uses
        image = np.asarray(Image.fromarray(image[..., :3].astype(np.uint8)).convert("L"))
    return photo_digit(np.asarray(image, dtype=np.float32), empty)


def photo_ink(image: np.ndarray) -> np.ndarray:
    """Ink in [0, 1] from a photo or scan: the paper's grey level (the median) is 0, the darkest
    (or, on dark paper, the lightest) pixel is 1, and what is within a quarter of the paper is 0."""
    gray = np.asarray(image, dtype=np.float32)
    if gray.ndim == 3:
        gray = gray[..., :3].mean(-1)
    paper = float(np.median(gray))
    if paper > 127:  # dark ink on light paper
        amount = (paper - gray) / max(paper - float(gray.min()), 1.0)
    else:  # light ink on dark paper
        amount = (gray - paper) / max(float(gray.max()) - paper, 1.0)
    amount = np.clip(amount, 0.0, 1.0)
    amount[amount < 0.25] = 0.0
    return amount


def digit_from_ink(amount: np.ndarray, empty: str) -> np.ndarray:
    """Ink amounts as an MNIST digit (crop, fit 20x20, centre by mass in 28x28); ``empty``: the
    message when there is no ink."""
    mask = amount > 0.1
    if mask.sum() < 4:
        raise UserError(empty)
    rows, cols = np.nonzero(mask)
    crop = amount[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    scale = 20.0 / max(crop.shape)
    h, w = (max(1, round(s * scale)) for s in crop.shape)
    small = np.asarray(
        Image.fromarray((crop * 255).astype(np.uint8)).resize((w, h), Image.Resampling.LANCZOS),
        dtype=np.float32,
    )
    total = small.sum()
    cy, cx = ((np.indices(small.shape) * small).reshape(2, -1).sum(1) / total).tolist()
    top, left = round(14 - cy), round(14 - cx)
    top, left = min(max(top, 0), 28 - h), min(max(left, 0), 28 - w)
    out = np.zeros((28, 28), dtype=np.float32)
    out[top : top + h, left : left + w] = small
    return np.clip(out, 0, 255).astype(np.uint8)


def checked_mnist_config(state: dict, path: Path) -> dict:
    """The model settings of an MNIST checkpoint, refused unless they are ones we could write."""
    cfg = state["config"]

    def widths(value) -> bool:
        return (
            isinstance(value, (list, tuple))
            and len(value) <= 64
            and all(isinstance(w, int) and 1 <= w <= 1 << 16 for w in value)
        )

    if (
        not isinstance(cfg, dict)
        or cfg.get("model") not in ("mlp", "cnn")
        or not widths(cfg.get("mlp_widths"))
        or not widths(cfg.get("cnn_channels"))
        or not isinstance(cfg.get("dropout", 0.0), (int, float))
        or not 0 <= cfg.get("dropout", 0.0) < 1
    ):
        raise UserError(f"{path}: its model settings are not an intro-nn MNIST model's")
    return cfg


class DigitModel:
    """An MNIST network from an `intro-nn train mnist` checkpoint."""

    def __init__(self, checkpoint: Path, device: torch.device) -> None:
        state = load_checkpoint(
            checkpoint, project=PROJECT, required=CHECKPOINT_KEYS, map_location="cpu"
        )
        with refuse_if_damaged(checkpoint):
            cfg = checked_mnist_config(state, checkpoint)
            self.model = self._build(cfg, state, checkpoint)
        self.name = cfg["model"]
        self.model.to(device).eval()
        self.device = device

    @staticmethod
    def _build(cfg: dict, state: dict, checkpoint: Path):
        return model_from_checkpoint(
            lambda: build_model(
                cfg["model"],
                cfg["mlp_widths"],
                cfg["cnn_channels"],
                cfg.get("dropout", 0.0),
                cfg.get("batch_norm", True),
            ),
            state["model"],
            checkpoint,
        )

    @torch.no_grad()
    def probabilities(self, digit: np.ndarray) -> dict[str, float]:
        x = torch.from_numpy(digit).float().div(255).view(1, 1, 28, 28).to(self.device)
        p = self.model(normalize(x)).float().softmax(-1)[0].cpu()
        return {d: float(v) for d, v in zip(DIGITS, p, strict=True)}


def has_mnist(run: Path) -> bool:
    return checkpoint_in(run) is not None


def open_checked(source, name: str) -> Image.Image:
    """``Image.open`` (the header only: nothing is decoded yet), refusing quietly an image of more
    than ``MAX_IMAGE_PIXELS`` (Pillow's own bomb warnings are not printed: this is the check)."""
    limit = f"the most read is {MAX_IMAGE_PIXELS // 1_000_000} megapixels: scale it down first"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            im = Image.open(source)
        except Image.DecompressionBombError:
            raise UserError(f"{name} is far too many pixels; {limit}") from None
    if im.width * im.height > MAX_IMAGE_PIXELS:
        im.close()
        raise UserError(f"{name} is {im.width}x{im.height} pixels; {limit}")
    return im


def read_digit_image(path: Path) -> np.ndarray:
    """An image file (PNG, JPEG, ...: any size, any mode) as an MNIST digit; one message for a
    file that is not an image, one too large, or one without ink."""
    if not path.is_file():
        raise UserError(f"--image {path}: no such file")
    try:
        with open_checked(path, f"--image {path}") as im:
            im.draft("L", (im.width // 8 or 1, im.height // 8 or 1))  # JPEG: decode smaller
            gray = np.asarray(im.convert("L"), dtype=np.float32)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise UserError(f"--image {path} is not an image this program can read ({exc})") from None
    return photo_digit(gray, f"--image {path} shows no ink (a blank page?): photograph one digit")


def photo_digit(gray: np.ndarray, empty: str) -> np.ndarray:
    """A grey photo or scan (float, 0-255) as an MNIST digit; ``empty``: the message for no ink."""
    if min(gray.shape) > 560:  # the digit fits 20 pixels: a photo needs no more than 560 across
        step = min(gray.shape) // 280
        gray = gray[: gray.shape[0] // step * step, : gray.shape[1] // step * step]
        gray = gray.reshape(gray.shape[0] // step, step, gray.shape[1] // step, step).mean((1, 3))
    return digit_from_ink(photo_ink(gray), empty)


def top_digits(probabilities: dict[str, float], k: int = 3) -> list[dict]:
    best = sorted(probabilities.items(), key=lambda kv: -kv[1])[:k]
    return [{"digit": int(d), "probability": round(p, 6)} for d, p in best]


def predict_images(checkpoint: Path, images: list[Path], device: torch.device) -> list[dict]:
    """The top-3 digits of each image, read and checked before the model runs."""
    digits = [read_digit_image(Path(p)) for p in images]
    model = DigitModel(checkpoint, device)
    batch = torch.from_numpy(np.stack(digits)).float().div(255).unsqueeze(1).to(device)
    with torch.no_grad():
        probs = model.model(normalize(batch)).float().softmax(-1).cpu().numpy()
    out = []
    for path, p in zip(images, probs, strict=True):
        top = top_digits(dict(zip(DIGITS, p.tolist(), strict=True)))
        out.append({"image": str(path), "digit": top[0]["digit"], "top3": top})
    return out


def predict_digits(cfg) -> int:
    """``intro-nn predict mnist --image FILE ...``: the top-3 digits of each image as JSON."""
    if not cfg.image:
        raise UserError("predict mnist needs --image FILE [FILE ...]")
    served = find_run(PROJECT, cfg, train_command="intro-nn train mnist", has=has_mnist)
    checkpoint = served.checkpoint or checkpoint_in(served.run)
    print(json.dumps(predict_images(checkpoint, cfg.image, select_device(cfg.device))))
    return 0
