"""The Audio Spectrogram Transformer (AST, Gong et al. 2021), pretrained on AudioSet, as an audio-net
backbone: ``audio-net train --model ast --model-source SOURCE``.

AST cuts a (1024 frames x 128 mel bins) Kaldi filter bank into 16 x 16 patches with stride 10,
adds learned positions and a class and a distillation token, and runs a ViT-Base encoder (12 layers,
768 wide, 87M parameters); the pooled tokens go through a LayerNorm and a Linear head. We keep
transformers' ``ASTForAudioClassification`` as the network (its weights load unchanged), replace
the head for the user's labels, and feed it our own batched Kaldi front end
(``features.KaldiFbank``), equal to transformers' ``ASTFeatureExtractor`` to 1e-4 (tested).

SOURCE is a local folder in transformers' layout (``config.json``, ``model.safetensors``, and
``preprocessor_config.json`` for the normalisation) or a Hub name fetched into the Hub's cache
(``MIT/ast-finetuned-audioset-10-10-0.4593``, AudioSet mAP 0.459 by its authors). Offline, a Hub
name is one message naming the folder to pass instead.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from audio_net.features import FeatureParams
from shared.errors import UserError
from shared.hub import (
    Source,
    check_config_fits_weights,
    config_integer,
    from_pretrained_quietly,
    read_model_json,
    safetensors_file,
)

DEFAULT_SOURCE = "MIT/ast-finetuned-audioset-10-10-0.4593"
SOURCE = Source("audio-net", "--model-source", "the AST backbone", DEFAULT_SOURCE)
MAX_JSON_BYTES = 4 << 20
# what an AST source's config may say (the network and its front end): checked before any work
CONFIG_BOUNDS = {
    "num_mel_bins": (16, 512),
    "max_length": (16, 8192),
    "hidden_size": (8, 8192),
    "num_hidden_layers": (1, 96),
    "num_attention_heads": (1, 128),
    "intermediate_size": (8, 65536),
    "patch_size": (2, 64),
    "frequency_stride": (1, 64),
    "time_stride": (1, 64),
}
# transformers' ASTConfig defaults (AST-Base), for the fields a config.json leaves out
AST_BASE = {
    "num_mel_bins": 128,
    "max_length": 1024,
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "patch_size": 16,
    "frequency_stride": 10,
    "time_stride": 10,
}
RATE_BOUNDS = {"sampling_rate": (4000, 192_000)}
# AudioSet's statistics of the filter bank: AST's default normalisation, (x - mean) / (2 std)
AUDIOSET_MEAN, AUDIOSET_STD = -4.2677393, 4.5689974


def source_folder(source: str | None, quiet: bool = False) -> Path:
    """``--model-source`` (or AudioSet's AST): a local folder, or a Hub name fetched once."""
    return SOURCE.folder(source, quiet)


def read_json(path: Path, required: bool = True) -> dict:
    return read_model_json(path, required, MAX_JSON_BYTES)


def ast_config(raw: dict, labels: list[str], where: object):
    """transformers' ``ASTConfig`` from a config dict (a source's config.json or a checkpoint's
    copy), with the head sized for ``labels``; a config of another model is refused."""
    SOURCE.require()
    from transformers import ASTConfig  # optional: the pretrained extra

    if raw.get("model_type", "audio-spectrogram-transformer") != "audio-spectrogram-transformer":
        raise UserError(f"{where}: model_type {raw.get('model_type')!r} is not an AST")
    check_numbers({**AST_BASE, **raw}, CONFIG_BOUNDS, where)  # before transformers reads them
    kept = {k: v for k, v in raw.items() if k not in ("id2label", "label2id", "num_labels")}
    try:
        config = ASTConfig(
            **kept,
            id2label=dict(enumerate(labels)),
            label2id={name: i for i, name in enumerate(labels)},
        )
    except (TypeError, ValueError) as exc:
        raise UserError(f"{where}: not an AST config ({exc})") from exc
    check_numbers({k: getattr(config, k, None) for k in CONFIG_BOUNDS}, CONFIG_BOUNDS, where)
    return config


def check_numbers(values: dict, bounds: dict[str, tuple[int, int]], where: object) -> None:
    """Each of ``values`` an integer within its ``bounds``, else one ``UserError``."""
    for key, (low, high) in bounds.items():
        config_integer(values, key, where, low, high)


def source_features(folder: Path, hop_seconds: float | None) -> FeatureParams:
    """AST's front end as the source describes it: 16 kHz (its feature extractor's rate), its mel
    bins, windows of its ``max_length`` frames of 10 ms (10.24 s for AudioSet's models)."""
    config = read_json(folder / "config.json")
    pre = read_json(folder / "preprocessor_config.json", required=False)
    rate = pre.get("sampling_rate", 16000)
    mels, frames = config.get("num_mel_bins", 128), config.get("max_length", 1024)
    # every number the source states, checked before any clip is featurized with them
    check_numbers({**AST_BASE, **config}, CONFIG_BOUNDS, folder / "config.json")
    check_numbers({"sampling_rate": rate}, RATE_BOUNDS, folder / "preprocessor_config.json")
    normalisation(folder)
    window = frames / 100  # frames of 10 ms
    return FeatureParams(
        sample_rate=rate,
        n_fft=rate * 25 // 1000,
        hop_length=rate // 100,
        n_mels=mels,
        window_seconds=window,
        hop_seconds=hop_seconds or window / 2,
        min_seconds=min(1.0, window / 3),
        frontend="kaldi_fbank",
    )


def base_features(hop_seconds: float | None = None) -> FeatureParams:
    """AudioSet AST's front end (16 kHz, 128 mel bins, 1024 frames) without a folder: ``bench``
    times an AST-Base-shaped network built from transformers' default ``ASTConfig``."""
    return FeatureParams(
        sample_rate=16000,
        n_fft=400,
        hop_length=160,
        n_mels=128,
        window_seconds=10.24,
        hop_seconds=hop_seconds or 5.12,
        frontend="kaldi_fbank",
    )


def normalisation(folder: Path) -> tuple[float, float]:
    """(mean, scale) with which the classifier normalises the filter bank: AST divides by twice
    the standard deviation, so the scale is 2 std."""
    pre = read_json(folder / "preprocessor_config.json", required=False)
    mean, std = pre.get("mean", AUDIOSET_MEAN), pre.get("std", AUDIOSET_STD)
    for name, value in (("mean", mean), ("std", std)):
        if (
            not isinstance(value, (int, float))
            or isinstance(value, bool)
            or not math.isfinite(value)
        ):
            raise UserError(f"{folder}/preprocessor_config.json: {name} {value!r} is not a number")
    if not std > 0:
        raise UserError(f"{folder}/preprocessor_config.json: std {std!r} is not positive")
    return float(mean), 2.0 * float(std)


class ASTBackbone(nn.Module):
    """transformers' ``ASTForAudioClassification`` taking our (N, 1, mels, frames) windows; ``fc``
    is its head (LayerNorm + Linear), the part a frozen-body phase trains alone."""

    def __init__(self, config=None, model: nn.Module | None = None) -> None:
        """A new network of ``config``'s shape, or ``model`` (one transformers loaded) as it is."""
        super().__init__()
        if model is None:
            SOURCE.require()
            from transformers import ASTForAudioClassification  # optional: the pretrained extra

            model = ASTForAudioClassification(config)
        self.ast = model

    @property
    def fc(self) -> nn.Module:
        return self.ast.classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ast(input_values=x.squeeze(1).transpose(1, 2)).logits


def pretrained_backbone(folder: Path, labels: list[str]) -> ASTBackbone:
    """The source's weights in an ``ASTBackbone`` whose head has one output per label (a new head,
    unless the source's already has exactly these labels). Before transformers allocates
    anything, the network the config describes is built on the meta device and its parameter
    count compared with the weights the file holds: a config cannot make us allocate what the
    weights do not hold."""
    config = ast_config(read_json(folder / "config.json"), labels, folder)
    weights = safetensors_file(folder)
    from transformers import ASTForAudioClassification  # optional: the pretrained extra

    with torch.device("meta"):
        probe = ASTBackbone(config)
    body = sum(
        p.numel() for n, p in probe.ast.named_parameters() if not n.startswith("classifier.")
    )
    check_config_fits_weights(body, weights, "a network before its head")
    source = from_pretrained_quietly(  # the head is new unless the labels are the source's
        ASTForAudioClassification,
        folder,
        "AST weights",
        config=config,
        ignore_mismatched_sizes=True,
    )
    return ASTBackbone(model=source.float())
