"""``audio-net predict``: top labels (genres) for audio files of any length, one JSON entry per file."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from audio_net.audio import MAX_RATE, MIN_RATE, AudioError, read_audio
from audio_net.config import PredictConfig
from audio_net.features import FeatureParams, LogMel, featurize_waves
from audio_net.model import BACKBONES, SpectrogramClassifier, build_backbone
from shared.checkpoint import (
    load_checkpoint,
    model_from_checkpoint,
    reading,
    settings_from_checkpoint,
)
from shared.device import select_device
from shared.errors import UserError

PROJECT = "audio-net"
CHECKPOINT_KEYS = ("model", "genres", "feature_params", "split", "backbone")


# a checkpoint's feature settings, bounded before anything is built from them (far around what
# any audio model uses: the defaults are 22,050 Hz, n_fft 2048, hop 512, 128 mels, 3 s windows)
FEATURE_BOUNDS = {
    "sample_rate": (MIN_RATE, MAX_RATE),
    "n_fft": (16, 1 << 16),
    "hop_length": (1, 1 << 16),
    "n_mels": (1, 1024),
    "window_seconds": (0.05, 600.0),
    "hop_seconds": (0.01, 600.0),
    "top_db": (1.0, 400.0),
    "min_seconds": (0.0, 600.0),
}
MAX_LABELS = 100_000


def checked_labels(state: dict, path: Path) -> list[str]:
    labels = state["genres"]
    if (
        not isinstance(labels, (list, tuple))
        or not 2 <= len(labels) <= MAX_LABELS
        or not all(isinstance(g, str) and g for g in labels)
        or len(set(labels)) != len(labels)
    ):
        raise UserError(f"{path}: its labels are not a list of 2 or more distinct names")
    return list(labels)


def checked_feature_params(state: dict, path: Path) -> FeatureParams:
    return settings_from_checkpoint(
        FeatureParams, state["feature_params"], FEATURE_BOUNDS, path, "its feature_params"
    )


def load_classifier(
    path: Path, device
) -> tuple[SpectrogramClassifier, FeatureParams, list[str], dict]:
    """The classifier of a checkpoint, its feature settings and labels, all checked first."""
    state = load_checkpoint(path, project=PROJECT, required=CHECKPOINT_KEYS, map_location="cpu")
    with reading(path):
        genres = checked_labels(state, path)
        params = checked_feature_params(state, path)
        if state["backbone"] not in BACKBONES:
            raise UserError(f"{path}: unknown model {state['backbone']!r}")
        model = model_from_checkpoint(
            lambda: SpectrogramClassifier(build_backbone(state["backbone"], len(genres))),
            state["model"],
            path,
        )
    return model.to(device).eval(), params, genres, state


@torch.no_grad()
def predict_files(cfg: PredictConfig) -> list[dict]:
    """Top labels per file, from a checkpoint or (``--onnx``) an exported model and its sidecar."""
    if not cfg.files:
        raise UserError("predict needs at least one audio file")
    if cfg.top < 1:
        raise UserError("--top must be at least 1")
    if (cfg.checkpoint is None) == (cfg.onnx is None):
        raise UserError("predict needs --checkpoint C (a trained run) or --onnx MODEL (an export)")
    if cfg.onnx is not None:
        from audio_net.export import OnnxClassifier

        device = torch.device("cpu")
        exported = OnnxClassifier(cfg.onnx)
        params, genres = exported.params, exported.labels
        window_probabilities = exported.probabilities
    else:
        device = select_device(cfg.device)
        model, params, genres, _ = load_classifier(cfg.checkpoint, device)

        def window_probabilities(windows: torch.Tensor) -> torch.Tensor:
            return model(model.normalise(windows)).float().softmax(-1)

    logmel = LogMel(params).to(device)
    results = []
    for path in cfg.files:
        try:
            wave = read_audio(path, params.sample_rate, params.min_seconds)
        except AudioError as exc:
            results.append({"file": str(path), "error": str(exc)})
            continue
        windows = featurize_waves([wave], logmel, device)[0]
        probs = window_probabilities(windows).mean(0)
        top = torch.topk(probs, min(cfg.top, len(genres)))
        results.append(
            {
                "file": str(path),
                "seconds": round(len(wave) / params.sample_rate, 2),
                "windows": len(windows),
                "top": [
                    {
                        "label": genres[int(i)],
                        "genre": genres[int(i)],  # the older key, the same value
                        "probability": round(float(p), 4),
                    }
                    for p, i in zip(top.values, top.indices, strict=True)
                ],
            }
        )
    return results


def predict(cfg: PredictConfig) -> int:
    results = predict_files(cfg)
    print(json.dumps(results, indent=2))
    return 0 if any("top" in r for r in results) else 1
