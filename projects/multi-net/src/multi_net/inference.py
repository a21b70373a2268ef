"""A trained multi-net model, loaded for inference: embed videos and texts as training did.

``train`` writes the checkpoints this module reads; ``evaluate``, ``index``, ``recommend`` (and
the demo) only read them. Nothing here imports the training code, as open_clip keeps its library
apart from its training scripts.
"""

from __future__ import annotations

import types
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from multi_net import PROJECT
from multi_net.encoders import CLIP_MEAN, CLIP_STD, load_clip, text_features
from multi_net.features import (
    audio_input,
    clip_identity,
    load_video_features,
)
from multi_net.model import FusionConfig, FusionModel, embed_videos
from multi_net.video import DecodeParams
from shared.checkpoint import (
    check_settings_bounds,
    check_weights_fit,
    load_checkpoint,
    model_from_checkpoint,
    refuse_if_damaged,
    settings_from_checkpoint,
)

CHECKPOINT_KEYS = ("model", "config", "fusion_config", "decode", "end_to_end")


DECODE_BOUNDS = {
    "num_frames": (1, 1024),
    "size": (8, 4096),
    "audio_seconds": (0.0, 3600.0),
    "audio_rate": (1000, 384000),
}
CLAP_RATE = 48000  # CLAP's feature extractor's rate


def decode_params(decode: dict, path: Path | str = "checkpoint") -> DecodeParams:
    values = {
        "num_frames": decode["num_frames"],
        "size": decode["size"],
        "audio_seconds": decode.get("audio_seconds", DecodeParams.audio_seconds),
        "audio_rate": decode.get("audio_rate", DecodeParams.audio_rate),
    }
    check_settings_bounds(path, values, DECODE_BOUNDS)
    return DecodeParams(**values)


class EndToEnd(nn.Module):
    """CLIP's towers and the fusion model trained together (--no-freeze-encoders)."""

    def __init__(self, clip, fusion: FusionModel) -> None:
        super().__init__()
        self.clip, self.fusion = clip, fusion

    def image_features(self, frames: torch.Tensor) -> torch.Tensor:
        b, k = frames.shape[:2]
        x = frames.reshape(b * k, *frames.shape[2:]).float().div(255)
        x = (x - CLIP_MEAN.to(x.device)) / CLIP_STD.to(x.device)
        return F.normalize(self.clip.encode_image(x).float(), dim=-1).view(b, k, -1)

    def forward(self, frames, logmel, has_audio, tokens, frame_noise=None):
        text = F.normalize(self.clip.encode_text(tokens).float(), dim=-1)
        return self.fusion(self.image_features(frames), logmel, has_audio, text, frame_noise)


FUSION_BOUNDS = {  # far around every preset; checked before anything is built
    "clip_dim": (1, 1 << 14),
    "embed_dim": (1, 1 << 14),
    "fusion_dim": (1, 1 << 14),
    "fusion_layers": (0, 64),
    "fusion_heads": (1, 256),
    "num_frames": (1, 1024),
    "n_mels": (1, 1024),
    "audio_width": (1, 4096),
    "audio_dim": (1, 1 << 14),
    "modality_dropout": (0.0, 1.0),
    "dropout": (0.0, 1.0),
}


def checked_fusion_config(state: dict, path: Path) -> FusionConfig:
    return settings_from_checkpoint(
        FusionConfig, state["fusion_config"], FUSION_BOUNDS, path, "its fusion_config"
    )


class TrainedModel:
    """Everything needed to embed videos and texts as the checkpoint's model does."""

    def __init__(self, checkpoint: Path, device) -> None:
        state = load_checkpoint(
            checkpoint, project=PROJECT, required=CHECKPOINT_KEYS, map_location="cpu"
        )
        with refuse_if_damaged(checkpoint):  # a damaged or crafted checkpoint: one message
            self._load(state, Path(checkpoint), device)

    def _load(self, state: dict, checkpoint: Path, device) -> None:
        fusion = checked_fusion_config(state, checkpoint)  # before anything is built
        cfg = types.SimpleNamespace(**state["config"])
        cfg.clip_weights = Path(cfg.clip_weights) if cfg.clip_weights else None
        self.clip, self.tokenizer, _ = load_clip(
            cfg.clip_model,
            cfg.clip_pretrained,
            cfg.clip_weights,
            # the checkpoint carries its own CLIP weights when they were random or fine-tuned
            cfg.pretrained and state.get("clip_state") is None and not state["end_to_end"],
        )
        weights = state["model"]
        if state["end_to_end"]:  # fine-tuned CLIP towers live inside the model's state
            clip_state = {k[5:]: v for k, v in weights.items() if k.startswith("clip.")}
            weights = {k[7:]: v for k, v in weights.items() if k.startswith("fusion.")}
        else:
            clip_state = state.get("clip_state")
        if clip_state is not None:
            check_weights_fit(self.clip.state_dict(), clip_state, checkpoint)
            self.clip.load_state_dict(clip_state)
        self.clip = self.clip.to(device).eval()
        self.model = model_from_checkpoint(lambda: FusionModel(fusion), weights, checkpoint)
        self.model = self.model.to(device).eval()
        self.params = decode_params(state["decode"], checkpoint)
        self.audio = audio_input(
            fusion.audio_encoder, getattr(cfg, "audio_source", None), self.params.audio_rate
        )
        self.clip_id = clip_identity(cfg, cfg.seed)
        if state["end_to_end"]:  # features of a fine-tuned tower belong to this checkpoint alone
            st = Path(checkpoint).stat()
            self.clip_id = f"finetuned:{Path(checkpoint).resolve()}:{st.st_size}:{st.st_mtime_ns}"
        self.checkpoint, self.device, self.state = Path(checkpoint), device, state

    def features(self, paths: dict[str, Path], cache: Path | None, quiet: bool = True):
        return load_video_features(
            paths,
            self.params,
            self.clip,
            self.clip_id,
            self.device,
            cache,
            audio=self.audio,
            quiet=quiet,
        )

    def videos(self, paths: dict[str, Path], cache: Path | None, quiet: bool = True):
        feats = self.features(paths, cache, quiet)
        return feats, embed_videos(self.model, feats, torch.arange(len(feats.ids)), self.device)

    @torch.no_grad()
    def texts(self, queries: list[str]) -> torch.Tensor:
        return self.model.encode_text(
            text_features(self.clip, self.tokenizer, queries, self.device)
        )

    def text(self, query: str) -> torch.Tensor:
        return self.texts([query])[0]
