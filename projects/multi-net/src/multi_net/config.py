"""multi-net's command configurations (each field is a CLI flag)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from multi_net import PROJECT
from shared.cli import (
    SEED_RANGE,
    DataCommandConfig,
    DemoOptions,
    RunConfig,
    ServeBenchOptions,
    ServeOptions,
    arg,
    cache_flag,
    check_bounds,
    epochs_flag,
)
from shared.errors import UserError
from shared.files import require_file

# --preset synth: the synthetic audio-visual benchmark (``multi-net data synth``) trained from
# scratch on a CPU: a small frame encoder (mn-synth: open_clip's 2-layer text transformer and a
# small CNN image tower that keeps where things are, ``encoders.FrameCNN``), random weights,
# trained end to end with the fusion model and its motion tokens. Frozen random towers do not know
# what a "red square" is. On the validation clips a 2-layer ViT (mn-tiny) learnt colour and sound
# but not shape or direction, a small ResNet with CLIP's attention pool shape too but not direction
# (the figures: NOTES.md). Four frames show a direction; three seconds of audio are the whole clip, and a
# narrow audio CNN tells four sounds apart.
PRESETS: dict[str, dict] = {
    "synth": dict(
        clip_model="mn-synth",
        pretrained=False,
        freeze_encoders=False,
        encoder_lr=1e-3,
        lr=1e-3,
        num_frames=4,
        audio_seconds=3.0,
        epochs=40,
        batch_size=64,
        fusion_dim=128,
        audio_width=16,
        weight_decay=0.05,
        train_split="all",
    ),
}


@dataclass
class DataOptions:
    videos: Path | None = arg(
        None, "folder of video<N>.mp4 files (default: <data root>/msrvtt/videos)"
    )
    annotations: list[Path] = arg(
        default_factory=list, help="annotation files, any supported format"
    )
    download: bool = arg(True, "download MSR-VTT when it is not found")
    cache_dir: Path = cache_flag(PROJECT, "decode and feature cache")
    num_frames: int = arg(8, "frames sampled uniformly per clip", low=1)
    audio_seconds: float = arg(10.0, "audio cut or zero-padded to this length", above=0)


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
    preset: Literal["none", "synth"] = arg(
        "none",
        "settings for a known data set: synth (multi-net data synth's clips, trained from "
        "scratch); flags you give explicitly win",
        sets=PRESETS,
    )
    val_videos: int = arg(
        500,
        "training videos held out for validation when the annotations name none (10%% of a small set)",
        low=0,
    )
    train_split: Literal["9k", "7k", "official", "all"] = arg(
        "9k", "training videos (1k-A test videos never train)"
    )
    freeze_encoders: bool = arg(
        True, "train only projections, the audio encoder and fusion on cached CLIP features"
    )
    epochs: int | str = arg(
        "auto",
        "training epochs, or auto: enough epochs for 500 optimizer steps (at least 10), stopped "
        "early when validation R@1 stops improving (see --patience); a small folder needs many "
        "more epochs than MSR-VTT",
        parse=epochs_flag,
    )
    patience: int | None = arg(
        None,
        "stop after this many epochs without a better validation R@1 (default: with --epochs "
        "auto, 10 epochs or 100 steps, whichever is longer; with --epochs N, never)",
        low=0,
    )
    batch_size: int = arg(
        128, "videos per batch (each with one random caption; InfoNCE needs negatives)", low=2
    )
    lr: float = arg(5e-4, "peak learning rate (AdamW, warmup + cosine)")
    encoder_lr: float = arg(1e-6, "CLIP learning rate with --no-freeze-encoders")
    weight_decay: float = arg(0.05, "AdamW weight decay")
    vv_weight: float = arg(0.0, "weight of the video<->video InfoNCE between two augmented views")
    temporal: Literal["transformer", "mean"] = arg(
        "transformer", "frames as fused tokens, or mean-pooled first"
    )
    motion: bool = arg(
        True, "motion tokens: the differences of consecutive frames' features, fused with them"
    )
    fusion_dim: int = arg(256, "fusion transformer width")
    fusion_layers: int = arg(2, "fusion transformer layers")
    modality_dropout: float = arg(
        0.3, "chance to hide the audio token in training", low=0, high=0.99
    )
    audio_width: int = arg(64, "base width of the audio CNN")
    audio_encoder: Literal["cnn", "resnet18", "clap"] = arg(
        "cnn",
        "audio encoder: a small CNN from scratch or ResNet18 from ImageNet weights (trained, on "
        "the cached log-mels), or clap: CLAP's audio tower pretrained on sounds and their "
        "descriptions (frozen, its embedding cached; see --audio-source)",
    )
    audio_source: str | None = arg(
        None,
        "--audio-encoder clap: a folder in transformers' layout (config.json, model.safetensors, "
        "preprocessor_config.json) or a Hub name (default: laion/clap-htsat-unfused)",
        needs={"audio_encoder": "clap"},
    )
    weights: Path | None = arg(
        None,
        "local ImageNet ResNet18 state_dict for --audio-encoder resnet18 (offline)",
        needs={"audio_encoder": "resnet18"},
    )
    max_minutes: float | None = arg(None, "stop training after this many minutes", above=0)


# --index and --collection: where a catalogue is (stores.py)
DEFAULT_COLLECTION = "multi_net_videos"


def is_milvus_uri(ref: str | Path | None) -> bool:
    """A Milvus address: ``http(s)://host:port``, or a Milvus Lite database file (``*.db``)."""
    text = str(ref)
    return text.startswith(("http://", "https://")) or text.endswith(".db")


def require_index(ref: str | None) -> None:
    """``--index``: an index file or a Milvus Lite file must exist (reading never creates one);
    a Milvus server is asked when the command runs."""
    if ref is None or str(ref).startswith(("http://", "https://")):
        return
    if str(ref).endswith(".db"):  # Milvus Lite keeps its database in a folder of that name
        if not Path(ref).exists():
            raise UserError(f"--index {ref}: no such file (build one with 'multi-net index')")
        return
    require_file(Path(ref), "--index")


def index_flag(help: str, **kwargs):
    return arg(
        None, f"{help}: an index file, or a Milvus URI (http://host:19530, or a .db file)", **kwargs
    )


def collection_flag(**kwargs):
    return arg(
        DEFAULT_COLLECTION, "the Milvus collection (with a Milvus --index or --uri)", **kwargs
    )


@dataclass
class EvaluateConfig(RunConfig, DataOptions):
    checkpoint: Path | None = arg(None, "checkpoint written by 'multi-net train'", required=True)
    split: Literal["test", "val", "all"] = arg(
        "test",
        "which pairs to score: the test or validation split, or all (every captioned video on "
        "disk, with its first caption; training videos included, so not a held-out figure)",
    )
    index: str | None = index_flag(
        "also score text search through this index (its videos' stored vectors, its search), "
        "built with this checkpoint"
    )
    collection: str = collection_flag()


@dataclass
class StoreOptions:
    """The knobs of ``--store faiss`` and ``--store milvus`` (``index``, and ``bench --store``)."""

    faiss_index: Literal["auto", "hnsw", "ivfpq"] = arg(
        "auto", "faiss: HNSW (up to 2M vectors under auto) or IVF-PQ (past it)", group="faiss"
    )
    hnsw_m: int = arg(
        32, "HNSW: links per vector (memory and build time)", low=4, high=256, group="faiss"
    )
    ef_search: int = arg(
        128,
        "HNSW: candidates kept while searching (recall against speed)",
        low=1,
        high=4096,
        group="faiss",
    )
    nlist: int = arg(
        0, "IVF-PQ: clusters (0: 4 x sqrt(videos))", low=0, high=1 << 20, group="faiss"
    )
    nprobe: int = arg(
        32,
        "IVF-PQ: clusters visited per query (recall against speed)",
        low=1,
        high=1 << 20,
        group="faiss",
    )
    pq_m: int = arg(
        0,
        "IVF-PQ: bytes per vector (0: 64, or the largest that divides the width)",
        low=0,
        high=1024,
        group="faiss",
    )
    milvus_index: Literal["flat", "hnsw"] = arg(
        "flat", "milvus: FLAT (exact) or HNSW (--hnsw-m, --ef-search)", group="milvus"
    )


@dataclass
class IndexConfig(StoreOptions):
    checkpoint: Path | None = arg(None, "checkpoint written by 'multi-net train'", required=True)
    videos: Path | None = arg(None, "folder of videos to index", required=True)
    store: Literal["exact", "faiss", "milvus"] = arg(
        "exact",
        "where the vectors go: exact (one file, searched exactly), faiss (one file, an "
        "approximate index: needs the faiss extra), milvus (a collection at --uri: needs the "
        "milvus extra)",
    )
    out: Path | None = arg(
        None,
        "exact and faiss: the index file (default: <runs root>/multi-net/indexes/<videos>-<time>.pt)",
    )
    uri: str | None = arg(
        None, "milvus: a local .db file (Milvus Lite) or a server's http://host:19530"
    )
    collection: str = collection_flag()
    update: bool = arg(
        False,
        "bring an existing index (--out, or --uri and --collection) in line with the folder: "
        "embed and add the videos new in it, remove the ones gone from it",
    )
    annotations: list[Path] = arg(
        default_factory=list, help="annotation files for metadata (categories, captions)"
    )
    cache_dir: Path = cache_flag(PROJECT, "decode and feature cache")
    data_dir: Path | None = arg(None, "data root (default: $DL_DATA_DIR, else <repo>/data)")
    device: Literal["auto", "cpu", "cuda", "mps"] = arg("auto", "where to run")
    quiet: bool = arg(False, "no progress bars")

    def __post_init__(self) -> None:
        check_bounds(self)
        if self.store == "milvus":
            if self.uri is None or not is_milvus_uri(self.uri):
                raise UserError("--store milvus needs --uri: a .db file or http://host:19530")
            if self.out is not None:
                raise UserError("--out names an index file: --store milvus writes to --uri")
        elif self.uri is not None:
            raise UserError("--uri names a Milvus database: add --store milvus (or give --out)")
        elif self.update and self.out is None:
            raise UserError("--update changes an existing index: name it with --out")


@dataclass
class RecommendConfig:
    index: str | None = index_flag("index written by 'multi-net index'", required=True)
    collection: str = collection_flag()
    video: str | None = arg(None, "a video id in the index, or a path to a new video")
    text: str | None = arg(None, "a text query, e.g. 'a man is playing guitar'")
    category: str | None = arg(None, "only videos of this category (e.g. music)")
    k: int = arg(10, "results to return", low=1, high=10_000)
    checkpoint: Path | None = arg(None, "checkpoint (default: the one the index was built with)")
    device: Literal["auto", "cpu", "cuda", "mps"] = arg("auto", "where to run")

    def __post_init__(self) -> None:  # before torch and open_clip are imported (seconds)
        check_bounds(self)
        require_index(self.index)
        require_file(self.checkpoint, "--checkpoint")


@dataclass
class BenchConfig(RunConfig, ServeBenchOptions, ModelOptions, StoreOptions):
    clips: int = arg(24, "generated 15 s 320x240 30 fps clips to decode (4 distinct, repeated)")
    num_frames: int = arg(8, "frames per clip")
    embed_videos: int = arg(16, "videos to embed for the embedding throughput")
    index: str | None = index_flag(
        "--serve: the index to serve (default: the newest under the runs folder); --store: real "
        "embeddings to measure on (an exact index)"
    )
    collection: str = collection_flag()
    store: Literal["exact", "faiss", "milvus"] | None = arg(
        None, "measure this store instead: build, query, add, remove, recall against exact"
    )
    vectors: int = arg(100_000, "--store: synthetic vectors to index", low=1000, high=100_000_000)


@dataclass
class DataConfig(DataCommandConfig):
    action: Literal["download", "check", "synth", "sample"] = arg(
        "download",
        "download MSR-VTT, check it, write the synthetic audio-visual benchmark (synth), or its "
        "small version as a sample to start from (sample: 96 clips in <data root>/synth-sample)",
        positional=True,
    )
    out: Path | None = arg(
        None,
        "synth: folder to write videos/ and annotations.json into (default: <data root>/synth)",
    )
    videos: int | None = arg(
        None,
        "synth: clips in all, one per combination for test and for validation, the rest to train "
        "(default: 1440 = 144 + 144 + 1152; with --small, 96 = 16 + 16 + 64)",
    )
    seed: int = arg(0, "synth: random seed", **SEED_RANGE)
    force: bool = arg(
        False, "synth: write into a non-empty --out, replacing its videos/ and annotations.json"
    )
    small: bool = arg(
        False, "synth: 2 values of each attribute (16 combinations), trains in a minute"
    )


@dataclass
class DemoConfig(DemoOptions):
    index: str | None = index_flag(
        "index built by 'multi-net index' (default: the newest under the runs folder)",
        group="demo",
    )
    collection: str = collection_flag(group="demo")
    videos: Path | None = arg(
        None,
        "folder of the indexed videos; only files inside it are served (default: the folder "
        "recorded in the index)",
        group="demo",
    )


@dataclass
class ServeConfig(ServeOptions):
    """Search and recommendation over an index, over HTTP for programs: POST /v1/search (text),
    POST /v1/recommend (a video id); /health and /metrics."""

    index: str | None = index_flag(
        "index built by 'multi-net index' (default: the newest under the runs folder)",
        group="serve",
    )
    collection: str = collection_flag(group="serve")

    def __post_init__(self) -> None:
        super().__post_init__()
        require_index(self.index)
        require_file(self.checkpoint, "--checkpoint")
