"""``audio-net predict``: top genres for audio files of any length, one JSON entry per file."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from audio_net.audio import AudioError, read_audio
from audio_net.config import PredictConfig
from audio_net.features import FeatureParams, LogMel, featurize_waves
from audio_net.model import SpectrogramClassifier, build_backbone
from shared.checkpoint import load_checkpoint
from shared.device import select_device
from shared.errors import UserError

PROJECT = "audio-net"
CHECKPOINT_KEYS = ("model", "genres", "feature_params", "split", "backbone")


def load_classifier(
    path: Path, device
) -> tuple[SpectrogramClassifier, FeatureParams, list[str], dict]:
    state = load_checkpoint(path, project=PROJECT, required=CHECKPOINT_KEYS, map_location=device)
    genres = list(state["genres"])
    model = SpectrogramClassifier(build_backbone(state["backbone"], len(genres)))
    model.load_state_dict(state["model"])
    return model.to(device).eval(), FeatureParams(**state["feature_params"]), genres, state


@torch.no_grad()
def predict_files(cfg: PredictConfig) -> list[dict]:
    if not cfg.files:
        raise UserError("predict needs at least one audio file")
    if cfg.top < 1:
        raise UserError("--top must be at least 1")
    device = select_device(cfg.device)
    model, params, genres, _ = load_classifier(cfg.checkpoint, device)
    logmel = LogMel(params).to(device)
    results = []
    for path in cfg.files:
        try:
            wave = read_audio(path, params.sample_rate, params.min_seconds)
        except AudioError as exc:
            results.append({"file": str(path), "error": str(exc)})
            continue
        windows = featurize_waves([wave], logmel, device)[0]
        probs = model(model.normalise(windows)).float().softmax(-1).mean(0)
        top = torch.topk(probs, min(cfg.top, len(genres)))
        results.append(
            {
                "file": str(path),
                "seconds": round(len(wave) / params.sample_rate, 2),
                "windows": len(windows),
                "top": [
                    {"genre": genres[int(i)], "probability": round(float(p), 4)}
                    for p, i in zip(top.values, top.indices, strict=True)
                ],
            }
        )
    return results


def predict(cfg: PredictConfig) -> int:
    results = predict_files(cfg)
    print(json.dumps(results, indent=2))
    return 0 if any("top" in r for r in results) else 1
