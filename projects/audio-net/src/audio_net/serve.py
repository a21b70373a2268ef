"""``audio-net serve``: the classifier over HTTP for programs.

``POST /v1/predict`` with an audio file as the body (WAV, FLAC, MP3, OGG: what ``predict`` reads;
any ``Content-Type`` but JSON), or JSON ``{"samples": [...], "sample_rate": 22050}`` (mono
floats). The answer is ``predict``'s for that audio: every window's probabilities averaged, the top
labels, and each label's probability. Windows of concurrent requests go through the network
together (``--max-batch`` requests, ``--max-wait-ms``); ``--max-seconds`` bounds a request.
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

import anyio
import numpy as np
import soundfile as sf
import torch
from fastapi import Request
from pydantic import BaseModel, Field, ValidationError

from audio_net.audio import AudioError, open_audio, read_audio, resample
from audio_net.config import BenchConfig, ServeConfig
from audio_net.features import featurize_waves, frontend
from audio_net.inference import PROJECT, load_classifier
from audio_net.model import window_logits
from shared.demo import find_run
from shared.device import select_device
from shared.errors import UserError
from shared.serve import Batcher, Metrics, bench_serve, create_app

MAX_SAMPLE_RATE = 192_000


class Samples(BaseModel):
    samples: list[float] = Field(min_length=1)
    sample_rate: int = Field(ge=1000, le=MAX_SAMPLE_RATE)


def too_long(seconds: float, limit: float) -> None:
    if seconds > limit:
        raise UserError(f"{seconds:.1f} s of audio: this server reads {limit:g} s")


def wave_of_file(data: bytes, params, limit: float) -> torch.Tensor:
    """An uploaded file's mono waveform at the model's rate, as ``predict`` reads a file."""
    with tempfile.NamedTemporaryFile(prefix="audio-net-serve-", delete=False) as f:
        f.write(data)
    path = Path(f.name)
    try:
        with open_audio(path) as audio:
            too_long(audio.frames / audio.samplerate, limit)
        return read_audio(path, params.sample_rate, params.min_seconds)
    except AudioError as exc:
        raise UserError(str(exc).replace(str(path), "the upload")) from None
    finally:
        os.unlink(path)


def wave_of_samples(req: Samples, params, limit: float) -> torch.Tensor:
    too_long(len(req.samples) / req.sample_rate, limit)
    wave = torch.tensor(req.samples, dtype=torch.float32)
    if not torch.isfinite(wave).all():
        raise UserError("samples: every sample must be a finite number")
    wave = resample(wave, req.sample_rate, params.sample_rate)
    if len(wave) < params.min_seconds * params.sample_rate:
        raise UserError(f"{len(wave) / params.sample_rate:.2f} s: the least read is "
                        f"{params.min_seconds:g} s")  # fmt: skip
    return wave


def samples_of(data: bytes) -> Samples:
    try:
        return Samples.model_validate_json(data)
    except ValidationError as exc:
        where = ".".join(str(x) for x in exc.errors()[0]["loc"]) or "body"
        raise UserError(f"{where}: {exc.errors()[0]['msg']}") from None


def build_api(cfg: ServeConfig):
    served = find_run(PROJECT, cfg, train_command="audio-net train")
    device = select_device(cfg.device)
    model, params, labels, _ = load_classifier(served.checkpoint, device)
    logmel = frontend(params).to(device)
    metrics = Metrics(PROJECT)
    info = {"checkpoint": str(served.checkpoint), "labels": labels, "device": str(device)}
    # a float32 WAV of --max-seconds at the highest rate read, with room for its header
    body = int(cfg.max_seconds * MAX_SAMPLE_RATE * 4 * 2) + 65536
    app = create_app(PROJECT, info, metrics, max_body_bytes=body)

    @torch.no_grad()
    def classify(waves: list[torch.Tensor]) -> list[tuple[torch.Tensor, int]]:
        """The requests' waveforms featurized and through the network together, in this one
        thread (torch ops from many request threads at once would oversubscribe the cores);
        each one's mean probabilities and window count."""
        windows = featurize_waves(waves, logmel, logmel.window.device)
        probs = window_logits(model, model.normalise, torch.cat(windows).to(device)).softmax(-1)
        split = probs.float().split([len(w) for w in windows])
        return [(p.mean(0).cpu(), len(p)) for p in split]

    batcher = Batcher(
        classify, max_batch=cfg.max_batch, max_wait_ms=cfg.max_wait_ms, max_queue=cfg.max_queue
    )
    app.state.workers.append(batcher)
    metrics.gauge("queue_depth", "Requests waiting for a batch.", lambda: batcher.depth)
    metrics.gauge("batches", "Forward passes run.", lambda: batcher.batches)

    # decoding in as many threads as there are cores: more would only fight the batch for them
    decoders = anyio.CapacityLimiter(os.cpu_count() or 1)

    @app.post("/v1/predict")
    async def predict(request: Request):
        data = await request.body()
        if not data:
            raise UserError("send an audio file as the body, or JSON samples and sample_rate")
        if request.headers.get("content-type", "").startswith("application/json"):
            read, given = wave_of_samples, samples_of(data)
        else:
            read, given = wave_of_file, data
        wave = await anyio.to_thread.run_sync(
            read, given, params, cfg.max_seconds, limiter=decoders
        )
        mean, windows = await batcher(wave)
        top = torch.topk(mean, min(cfg.top, len(labels)))
        return {
            "seconds": round(len(wave) / params.sample_rate, 2),
            "windows": windows,
            "top": [
                {"label": labels[int(i)], "probability": round(float(p), 4)}
                for p, i in zip(top.values, top.indices, strict=True)
            ],
            "probabilities": {
                label: round(float(p), 6) for label, p in zip(labels, mean, strict=True)
            },
        }

    return app


def serve_bench(cfg: BenchConfig) -> int:
    """``bench --serve``: ``audio-net serve`` on the newest run (or ``--checkpoint``), sent 10 s
    WAV files (a chord whose pitch moves per request) as the request body."""
    checkpoint = find_run(PROJECT, ServeConfig(checkpoint=cfg.checkpoint),
                          train_command="audio-net train").checkpoint  # fmt: skip
    args = ["--checkpoint", checkpoint]
    rate, t = 22050, np.arange(10 * 22050) / 22050

    def wav(shift: int) -> bytes:
        wave = sum(np.sin(2 * np.pi * f * (1 + shift / 12) * t) for f in (220, 277, 330)) / 4
        buf = io.BytesIO()
        sf.write(buf, wave.astype(np.float32), rate, format="WAV")
        return buf.getvalue()

    files = [wav(shift) for shift in range(7)]  # made once: the clients only send

    def request(i: int) -> tuple[str, bytes]:
        return "/v1/predict", files[i % len(files)]

    facts = {"serve_checkpoint": str(checkpoint), "serve_audio_seconds": 10}
    return bench_serve(PROJECT, cfg, args, request, facts)
