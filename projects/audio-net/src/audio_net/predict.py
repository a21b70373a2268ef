"""``audio-net predict``: top labels (genres) for audio files of any length, one JSON entry per file."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from audio_net.audio import AudioError, read_audio_segments
from audio_net.config import PredictConfig
from audio_net.features import KaldiFbank, LogMel, featurize_waves, frontend
from audio_net.inference import OnnxClassifier, load_classifier
from audio_net.model import window_logits
from shared.device import select_device
from shared.errors import UserError
from shared.progress import warn


@torch.no_grad()
def predict_files(cfg: PredictConfig) -> list[dict]:
    """Top labels per file, from a checkpoint or (``--onnx``) an exported model and its sidecar."""
    if not cfg.files:
        raise UserError("predict needs at least one audio file")
    if (cfg.checkpoint is None) == (cfg.onnx is None):
        raise UserError("predict needs --checkpoint C (a trained run) or --onnx MODEL (an export)")
    for path in map(Path, cfg.files):  # before loading any model: a typo is one line, at once
        if not path.exists():
            raise UserError(f"{path}: no such file")
        if not path.is_file():
            raise UserError(f"{path}: not a regular file")
    if cfg.onnx is not None:
        device = torch.device("cpu")
        exported = OnnxClassifier(cfg.onnx)
        params, genres = exported.params, exported.labels
        window_probabilities = exported.probabilities
    else:
        device = select_device(cfg.device)
        model, params, genres, _ = load_classifier(cfg.checkpoint, device)

        def window_probabilities(windows: torch.Tensor) -> torch.Tensor:
            return window_logits(model, model.normalise, windows).softmax(-1)

    logmel = frontend(params).to(device)
    results = []
    for path in cfg.files:
        try:
            results.append(classify_file(path, cfg, logmel, window_probabilities, genres))
        except AudioError as exc:
            results.append({"file": str(path), "error": str(exc)})
    return results


def classify_file(
    path, cfg: PredictConfig, logmel: LogMel | KaldiFbank, window_probabilities, labels
) -> dict:
    """One file's top labels, decoded and classified one segment at a time: the whole-file answer
    averages every window's probabilities, and a file longer than one segment also lists each
    segment's top label under ``segments``."""
    p = logmel.p
    total = torch.zeros(len(labels))
    n_windows, seconds, segments = 0, 0.0, []
    for start, wave in read_audio_segments(path, p.sample_rate, p.min_seconds, cfg.segment_seconds):
        windows = featurize_waves([wave], logmel, logmel.window.device)[0]
        probs = window_probabilities(windows).cpu()
        total += probs.sum(0)
        n_windows += len(windows)
        seconds = start + len(wave) / p.sample_rate
        best = probs.mean(0).max(0)
        segments.append(
            {
                "start": round(start, 2),
                "end": round(seconds, 2),
                "label": labels[int(best.indices)],
                "probability": round(float(best.values), 4),
            }
        )
    top = torch.topk(total / n_windows, min(cfg.top, len(labels)))
    result = {
        "file": str(path),
        "seconds": round(seconds, 2),
        "windows": n_windows,
        "top": [
            {
                "label": labels[int(i)],
                "genre": labels[int(i)],  # the older key, the same value
                "probability": round(float(p), 4),
            }
            for p, i in zip(top.values, top.indices, strict=True)
        ],
    }
    if len(segments) > 1:
        result["segments"] = segments
    return result


def predict(cfg: PredictConfig) -> int:
    """JSON for the files that could be read; each unusable file is a warning line on stderr, and
    none usable at all is one message (status 2) with nothing on stdout."""
    results = predict_files(cfg)
    failed = [r for r in results if "error" in r]
    if len(failed) == len(results):
        only = failed[0]["error"] if len(failed) == 1 else f"{failed[0]['error']}, ..."
        raise UserError(f"no usable audio in {len(failed)} file(s): {only}")
    for r in failed:
        warn(f"skipped {r['error']}")
    print(json.dumps(results, indent=2))
    return 0
