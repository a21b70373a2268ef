"""``audio-net export``: the classifier as ONNX, with a JSON sidecar holding everything else a
runtime needs to use it: the labels and the exact preprocessing (audio -> log-mel windows).

The graph takes log-mel windows in dB, ``(batch, n_mels, frames)`` float32 (the batch axis is
dynamic), normalises them with the training set's statistics inside the graph, and returns the
logits and the softmax probabilities per window; a clip's answer is the mean of its windows'
probabilities. ``audio-net predict --onnx model.onnx`` runs the graph with nothing but the sidecar,
so the sidecar's preprocessing is proven complete by the tests (same top-3 as the checkpoint).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch

from audio_net.config import ExportConfig
from audio_net.features import FeatureParams
from audio_net.inference import (
    ONNX_FORMAT,
    SIDECAR_FILE,
    load_classifier,
    require_onnx,
)
from shared.files import atomic_dir, require_new_folder, write_json
from shared.onnx_export import export_onnx

MODEL_FILE = "model.onnx"


class WindowClassifier(torch.nn.Module):
    """Log-mel windows (N, n_mels, frames) in dB -> (logits, probabilities)."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, logmel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.model(self.model.normalise(logmel))
        return logits, logits.softmax(-1)


def preprocessing(p: FeatureParams) -> dict:
    """The exact steps from a sound file to the graph's input, with every number they use."""
    if p.frontend == "kaldi_fbank":
        spectrum = [
            f"frames: n_fft ({p.n_fft}) samples every hop_length ({p.hop_length}), none past "
            "the ends (Kaldi's snip_edges); per frame: subtract its mean, pre-emphasis 0.97 "
            f"(x[i] - 0.97 x[i-1], x[-1] = x[0]), symmetric Hann window of n_fft, zero-padded "
            "to the next power of two",
            f"power spectrum re^2 + im^2; n_mels ({p.n_mels}) Kaldi mel banks from 20 Hz to "
            "sample_rate/2 (torchaudio.compliance.kaldi.get_mel_banks)",
            "natural log of max(mel, 1.1920929e-07): transformers' ASTFeatureExtractor without "
            "its normalisation",
            "windows: window_frames frames every hop_frames frames; zeros fill the last window",
        ]
    else:
        spectrum = [
            f"STFT: n_fft {p.n_fft}, hop_length {p.hop_length}, periodic Hann window of n_fft, "
            "centred frames (reflect padding), power = re^2 + im^2",
            f"mel: n_mels {p.n_mels} HTK-scale triangular filters from 0 Hz to sample_rate/2, "
            "no normalisation (torchaudio.functional.melscale_fbanks)",
            "dB: 10*log10(max(mel, 1e-10)), then floored at (the clip's maximum - top_db)",
            "windows: window_frames frames every hop_frames frames; the clip is padded with "
            "its own minimum (the floor) to fill the last window",
        ]
    return {
        **dataclasses.asdict(p),
        "window_frames": p.window_frames,
        "hop_frames": p.hop_frames,
        "steps": [
            "decode; mix to mono as the mean of the channels",
            f"resample to sample_rate ({p.sample_rate} Hz); refuse a clip shorter than min_seconds",
            *spectrum,
            "the graph: input logmel (windows, n_mels, window_frames); it normalises inside",
            "the clip's answer: the mean of its windows' probabilities",
        ],
    }


def export_classifier(checkpoint: Path, out: Path, quiet: bool = False) -> dict:
    require_onnx("onnx", "onnxscript", "onnxruntime")
    require_new_folder(out)
    model, params, labels, state = load_classifier(checkpoint, torch.device("cpu"))
    wrapper = WindowClassifier(model).eval()
    example = torch.randn(2, params.n_mels, params.window_frames)
    sidecar = {
        "format": ONNX_FORMAT,
        "labels": labels,
        "input": {"name": "logmel", "shape": ["batch", params.n_mels, params.window_frames]},
        "outputs": ["logits", "probabilities"],
        "preprocessing": preprocessing(params),
        "backbone": state["backbone"],
        "checkpoint": str(checkpoint),
    }
    with atomic_dir(out) as staging:  # a failed export leaves no folder, a half-written one never
        export_onnx(wrapper, example, staging / MODEL_FILE, "logmel", ["logits", "probabilities"])
        write_json(staging / SIDECAR_FILE, sidecar)
    return {
        "onnx": str(out / MODEL_FILE),
        "sidecar": str(out / SIDECAR_FILE),
        "labels": len(labels),
        "bytes": (out / MODEL_FILE).stat().st_size,
    }


def export_command(cfg: ExportConfig) -> int:
    """``audio-net export``: prints what was written, as JSON."""
    print(json.dumps(export_classifier(cfg.checkpoint, cfg.out, cfg.quiet)))
    return 0
