"""``intro-nn serve``: the MNIST network and the loan model over HTTP for programs.

``POST /v1/predict`` with one of:

- ``{"pixels": [[...28 numbers...] x 28]}``: an MNIST digit as the data set holds it (0-255,
  white ink on black);
- ``{"image": "<base64>"}``: a digit photo or drawing (PNG, JPEG, ...), read exactly as
  ``predict --image`` reads a file;
- ``{"loan": {"purpose": ..., "int.rate": ..., ...}}``: a loan row with the demo's fields.

Digits from concurrent requests are answered together (``--max-batch``, ``--max-wait-ms``);
``/health`` and ``/metrics`` as every project's server.
"""

from __future__ import annotations

import base64
import binascii
import io

import numpy as np
import torch
from fastapi.concurrency import run_in_threadpool
from PIL import UnidentifiedImageError
from pydantic import BaseModel, Field

from intro_nn import PROJECT
from intro_nn.config import BenchConfig, ServeConfig
from intro_nn.demo import find_models, loan_decision, loan_row
from intro_nn.inference import (
    DIGITS,
    DigitModel,
    normalize,
    open_checked,
    photo_digit,
    top_digits,
)
from shared.device import select_device
from shared.errors import UserError
from shared.serve import Batcher, Metrics, bench_serve, create_app

MAX_IMAGE_BYTES = 5 << 20


class Predict(BaseModel):
    """One of: ``pixels`` (an MNIST digit), ``image`` (a digit photo, base64), ``loan`` (a row)."""

    pixels: list[list[float]] | None = Field(None, min_length=28, max_length=28)
    image: str | None = Field(None, max_length=MAX_IMAGE_BYTES * 4 // 3 + 4)
    loan: dict[str, str | float] | None = None


def digit_of(req: Predict) -> np.ndarray:
    """The (28, 28) uint8 digit a request carries, checked."""
    if req.pixels is not None:
        pixels = np.asarray(req.pixels, dtype=np.float32)
        if pixels.shape != (28, 28) or not np.isfinite(pixels).all():
            raise UserError("pixels: 28 rows of 28 numbers")
        if pixels.min() < 0 or pixels.max() > 255:
            raise UserError("pixels: values from 0 (background) to 255 (ink)")
        return pixels.astype(np.uint8)
    try:
        raw = base64.b64decode(req.image, validate=True)
    except (binascii.Error, ValueError):
        raise UserError("image: not base64") from None
    try:
        with open_checked(io.BytesIO(raw), "image") as im:
            im.draft("L", (im.width // 8 or 1, im.height // 8 or 1))
            gray = np.asarray(im.convert("L"), dtype=np.float32)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise UserError("image: not an image this server can read") from None
    return photo_digit(gray, "image: shows no ink (a blank page?): photograph one digit")


def build_api(cfg: ServeConfig):
    mnist, loan = find_models(cfg)
    device = select_device(cfg.device)
    digits = DigitModel(mnist.checkpoint, device) if mnist else None
    bundle = None
    if loan is not None:
        from intro_nn.loan import load_loan_model  # slow: scikit-learn, for a loan model only

        bundle = load_loan_model(loan.run)
    metrics = Metrics(PROJECT)
    info = {"mnist": str(mnist.checkpoint) if mnist else None}
    info |= {"loan": str(loan.run) if loan else None, "device": str(device)}
    app = create_app(PROJECT, info, metrics, max_body_bytes=MAX_IMAGE_BYTES * 2)

    @torch.no_grad()
    def classify(batch: list[np.ndarray]) -> list[dict]:
        x = torch.from_numpy(np.stack(batch)).float().div(255).unsqueeze(1).to(device)
        probs = digits.model(normalize(x)).float().softmax(-1).cpu().numpy()
        out = []
        for p in probs:
            probabilities = dict(zip(DIGITS, p.tolist(), strict=True))
            top = top_digits(probabilities)
            out.append({"digit": top[0]["digit"], "top3": top, "probabilities": probabilities})
        return out

    batcher = None
    if digits is not None:
        opts = dict(max_batch=cfg.max_batch, max_wait_ms=cfg.max_wait_ms, max_queue=cfg.max_queue)
        batcher = Batcher(classify, **opts)
        app.state.workers.append(batcher)
        metrics.gauge("queue_depth", "Digits waiting for a batch.", lambda: batcher.depth)
        metrics.gauge("digit_batches", "Forward passes run on digits.", lambda: batcher.batches)

    @app.post("/v1/predict")
    async def predict(req: Predict):
        given = [k for k in ("pixels", "image", "loan") if getattr(req, k) is not None]
        if len(given) != 1:
            raise UserError("give one of: pixels (28x28), image (base64), loan (a row)")
        if req.loan is not None:
            if bundle is None:
                raise UserError("no loan model here: train one with 'intro-nn train loan'")
            values = {k: v for k, v in req.loan.items() if k != "purpose"}
            row = loan_row(str(req.loan.get("purpose", "")), values)
            return await run_in_threadpool(loan_decision, bundle, row)
        if batcher is None:
            raise UserError("no MNIST model here: train one with 'intro-nn train mnist'")
        digit = await run_in_threadpool(digit_of, req)
        return await batcher(digit)

    return app


def serve_bench(cfg: BenchConfig) -> int:
    """``bench --serve``: ``intro-nn serve`` on the newest MNIST run (or ``--checkpoint``), sent
    drawn digits (a stroke, shifted per request) as pixels."""
    served = ServeConfig(checkpoint=cfg.checkpoint)
    mnist, _ = find_models(served)
    if mnist is None:
        raise UserError("no MNIST model to serve: run 'intro-nn train mnist' first")
    args = ["--checkpoint", mnist.checkpoint]

    def request(i: int) -> tuple[str, dict]:
        pixels = np.zeros((28, 28), np.uint8)
        pixels[4:24, 10 + i % 8 : 13 + i % 8] = 255
        return "/v1/predict", {"pixels": pixels.tolist()}

    return bench_serve(PROJECT, cfg, args, request, {"serve_checkpoint": str(mnist.checkpoint)})
