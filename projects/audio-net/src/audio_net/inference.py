"""Inference, apart from training: a checkpoint (or an ONNX export) loaded and checked, with its
labels and feature settings. ``predict``, ``evaluate``, ``export`` and ``demo`` go through here."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch

from audio_net import PROJECT
from audio_net.ast_backbone import ast_config
from audio_net.audio import MAX_RATE, MIN_RATE
from audio_net.features import FRONTENDS, FeatureParams
from audio_net.model import BACKBONES, SpectrogramClassifier, build_backbone
from shared.checkpoint import (
    load_checkpoint,
    model_from_checkpoint,
    refuse_if_damaged,
    settings_from_checkpoint,
)
from shared.errors import UserError
from shared.extras import require

CHECKPOINT_KEYS = (
    "model",
    "feature_params",
    "split",
    "backbone",
)  # and "labels": checkpoint_labels
# audio-net's own checkpoint format (beside shared's format_version): 2 names the label list
# "labels"; 1 (no "audio_net_format" key, before December 2026) named it "genres"
CHECKPOINT_FORMAT = 2


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


def checkpoint_labels(state: dict, path: Path) -> list[str]:
    """A checkpoint's label names, checked: ``labels`` (format 2) or ``genres`` (format 1)."""
    key = "genres" if state.get("audio_net_format", 1) == 1 else "labels"
    if key not in state:
        raise UserError(f"{path} is not a complete audio-net checkpoint (it has no {key!r})")
    return checked_labels(state[key], path)


def checked_labels(labels, path: Path) -> list[str]:
    if (
        not isinstance(labels, (list, tuple))
        or not 2 <= len(labels) <= MAX_LABELS
        or not all(isinstance(g, str) and g for g in labels)
        or len(set(labels)) != len(labels)
    ):
        raise UserError(f"{path}: its labels are not a list of 2 or more distinct names")
    return list(labels)


def checked_feature_params(state: dict, path: Path) -> FeatureParams:
    params = settings_from_checkpoint(
        FeatureParams, state["feature_params"], FEATURE_BOUNDS, path, "its feature_params"
    )
    if params.frontend not in FRONTENDS:
        raise UserError(f"{path}: its feature front end {params.frontend!r} is not one we compute")
    return params


def load_classifier(
    path: Path, device
) -> tuple[SpectrogramClassifier, FeatureParams, list[str], dict]:
    """The classifier of a checkpoint, its feature settings and labels, all checked first."""
    state = load_checkpoint(path, project=PROJECT, required=CHECKPOINT_KEYS, map_location="cpu")
    with refuse_if_damaged(path):
        genres = checkpoint_labels(state, path)
        params = checked_feature_params(state, path)
        if state["backbone"] not in BACKBONES:
            raise UserError(f"{path}: unknown model {state['backbone']!r}")
        config = None
        if state["backbone"] == "ast":
            if not isinstance(state.get("ast_config"), dict):
                raise UserError(f"{path}: an AST checkpoint without its ast_config")
            config = ast_config(state["ast_config"], genres, path)
        model = model_from_checkpoint(
            lambda: SpectrogramClassifier(
                build_backbone(state["backbone"], len(genres), ast_config=config)
            ),
            state["model"],
            path,
        )
    return model.to(device).eval(), params, genres, state


SIDECAR_FILE = "model.json"
ONNX_FORMAT = "audio-net-onnx-1"


def require_onnx(*modules: str) -> None:
    require(modules, "audio-net", "export", "ONNX")


class OnnxClassifier:
    """An exported classifier run by onnxruntime, with the sidecar's labels and preprocessing."""

    def __init__(self, path: Path) -> None:
        require_onnx("onnxruntime")
        import onnxruntime as ort  # optional: the export extra

        path = Path(path)
        sidecar_path = path.with_name(SIDECAR_FILE) if path.suffix == ".onnx" else path
        if not path.is_file():
            raise UserError(f"--onnx {path}: no such file")
        if not sidecar_path.is_file():
            raise UserError(f"--onnx {path}: its sidecar {sidecar_path.name} is not beside it")
        try:
            sidecar = json.loads(sidecar_path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise UserError(f"{sidecar_path} is not a readable sidecar ({exc})") from None
        if not isinstance(sidecar, dict) or sidecar.get("format") != ONNX_FORMAT:
            raise UserError(f"{sidecar_path} is not an audio-net ONNX sidecar")
        self.labels = checked_labels(sidecar.get("labels"), sidecar_path)
        raw = sidecar.get("preprocessing", {})
        fields = {f.name for f in dataclasses.fields(FeatureParams)}
        raw = {k: v for k, v in raw.items() if k in fields} if isinstance(raw, dict) else raw
        self.params = settings_from_checkpoint(
            FeatureParams, raw, FEATURE_BOUNDS, sidecar_path, "its preprocessing"
        )
        if self.params.frontend not in FRONTENDS:
            raise UserError(
                f"{sidecar_path}: front end {self.params.frontend!r} is not one we compute"
            )
        try:
            self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own types for a bad file
            raise UserError(f"--onnx {path} is not a model onnxruntime can load ({exc})") from None
        self.check_sidecar_fits(sidecar_path)

    def check_sidecar_fits(self, sidecar_path: Path) -> None:
        """The sidecar must describe this graph: its mel count and window length are the input's
        fixed axes, its labels one per output; a sidecar that lies is one message naming the
        field, before any audio is read."""
        inputs = {i.name: i.shape for i in self.session.get_inputs()}
        outputs = {o.name: o.shape for o in self.session.get_outputs()}
        if "logmel" not in inputs or "probabilities" not in outputs:
            raise UserError(
                f"{sidecar_path}: its model has no logmel input or probabilities output"
            )
        shape, p = inputs["logmel"], self.params
        expected = {"n_mels": p.n_mels, "window_frames": p.window_frames}
        for (field, value), dim in zip(expected.items(), shape[1:], strict=False):
            if isinstance(dim, int) and dim != value:
                raise UserError(
                    f"{sidecar_path}: its preprocessing gives {field} {value}, but the model "
                    f"takes {dim}: the sidecar does not belong to this model"
                )
        n_out = outputs["probabilities"][-1]
        if isinstance(n_out, int) and n_out != len(self.labels):
            raise UserError(
                f"{sidecar_path}: it names {len(self.labels)} labels, but the model has {n_out} "
                "outputs: the sidecar does not belong to this model"
            )

    def probabilities(self, windows: torch.Tensor) -> torch.Tensor:
        (probs,) = self.session.run(["probabilities"], {"logmel": windows.float().numpy()})
        return torch.from_numpy(probs)
