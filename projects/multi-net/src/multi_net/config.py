"""multi-net's command configurations (each field is a CLI flag)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from shared.config import RunConfig, UserError, arg


@dataclass
class DataOptions:
    videos: Path | None = arg(
        None, "folder of video<N>.mp4 files (default: <data root>/msrvtt/videos)"
    )
    annotations: list[Path] = arg(
        default_factory=list, help="annotation files, any supported format"
    )
    download: bool = arg(True, "download MSR-VTT when it is not found")
    cache_dir: Path | None = arg(
        None, "decode/feature cache (default: <data root>/cache/multi-net)"
    )
    num_frames: int = arg(8, "frames sampled uniformly per clip")


@dataclass
class ModelOptions:
    clip_model: str = arg(
        "ViT-B-32", "open_clip model name ('mn-tiny': a tiny random CLIP for tests)"
    )
    clip_pretrained: str = arg("laion2b_s34b_b79k", "open_clip pretrained tag")
    clip_weights: Path | None = arg(None, "local open_clip weights file (offline)")
    pretrained: bool = arg(
        True,
        "load pretrained CLIP weights, and ImageNet ResNet18 weights with --audio-encoder resnet18 "
        "(--no-pretrained: random, for tests)",
    )


@dataclass
class TrainConfig(RunConfig, DataOptions, ModelOptions):
    train_split: Literal["9k", "7k", "official", "all"] = arg(
        "9k", "training videos (1k-A test videos never train)"
    )
    freeze_encoders: bool = arg(
        True, "train only projections, the audio encoder and fusion on cached CLIP features"
    )
    epochs: int = arg(10, "training epochs")
    batch_size: int = arg(128, "videos per batch (each with one random caption)")
    lr: float = arg(5e-4, "peak learning rate (AdamW, warmup + cosine)")
    encoder_lr: float = arg(1e-6, "CLIP learning rate with --no-freeze-encoders")
    weight_decay: float = arg(0.05, "AdamW weight decay")
    vv_weight: float = arg(0.0, "weight of the video<->video InfoNCE between two augmented views")
    temporal: Literal["transformer", "mean"] = arg(
        "transformer", "frames as fused tokens, or mean-pooled first"
    )
    fusion_dim: int = arg(256, "fusion transformer width")
    fusion_layers: int = arg(2, "fusion transformer layers")
    modality_dropout: float = arg(0.3, "chance to hide the audio token in training")
    audio_encoder: Literal["cnn", "resnet18"] = arg(
        "cnn",
        "log-mel audio encoder: a small CNN from scratch, or ResNet18 from ImageNet weights "
        "(always trained, on the cached log-mels)",
    )
    weights: Path | None = arg(
        None, "local ImageNet ResNet18 state_dict for --audio-encoder resnet18 (offline)"
    )
    max_minutes: float | None = arg(None, "stop training after this many minutes")

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 2:
            raise UserError("--epochs must be >= 1 and --batch-size >= 2 (InfoNCE needs negatives)")
        if not 0 <= self.modality_dropout < 1:
            raise UserError("--modality-dropout must be in [0, 1)")
        if self.num_frames < 1:
            raise UserError("--num-frames must be at least 1")
        if self.weights is not None and self.audio_encoder != "resnet18":
            raise UserError(
                "--weights holds ResNet18 weights: use it with --audio-encoder resnet18"
            )


@dataclass
class EvaluateConfig(RunConfig, DataOptions):
    checkpoint: Path | None = arg(None, "checkpoint written by 'multi-net train'")


@dataclass
class IndexConfig:
    checkpoint: Path | None = arg(None, "checkpoint written by 'multi-net train'")
    videos: Path | None = arg(None, "folder of videos to index")
    out: Path | None = arg(None, "index file to write (e.g. index.pt)")
    annotations: list[Path] = arg(
        default_factory=list, help="annotation files for metadata (categories, captions)"
    )
    cache_dir: Path | None = arg(
        None, "decode/feature cache (default: <data root>/cache/multi-net)"
    )
    device: Literal["auto", "cpu", "cuda", "mps"] = arg("auto", "where to run")
    quiet: bool = arg(False, "no progress bars")


@dataclass
class RecommendConfig:
    index: Path | None = arg(None, "index written by 'multi-net index'")
    video: str | None = arg(None, "a video id in the index, or a path to a new video")
    text: str | None = arg(None, "a text query, e.g. 'a man is playing guitar'")
    k: int = arg(10, "results to return")
    checkpoint: Path | None = arg(None, "checkpoint (default: the one the index was built with)")
    device: Literal["auto", "cpu", "cuda", "mps"] = arg("auto", "where to run")


@dataclass
class BenchConfig(RunConfig, ModelOptions):
    clips: int = arg(24, "generated 15 s 320x240 30 fps clips to decode (4 distinct, repeated)")
    num_frames: int = arg(8, "frames per clip")
    embed_videos: int = arg(16, "videos to embed for the embedding throughput")


@dataclass
class DataConfig:
    action: Literal["download", "check"] = arg(
        "download", "download MSR-VTT, or check it", positional=True
    )
    data_dir: Path | None = arg(None, "data root (default: $DL_DATA_DIR, else <repo>/data)")
    quiet: bool = arg(False, "no progress bars")
