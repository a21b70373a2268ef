"""audio-net's command configurations (each field is a CLI flag)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from audio_net import PROJECT
from shared.cli import (
    AUTO,
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

if TYPE_CHECKING:
    from audio_net.features import FeatureParams


@dataclass
class DataOptions:
    download: bool = arg(True, "download GTZAN when it is not found")
    cache_dir: Path = cache_flag(PROJECT, "feature cache")
    window_seconds: float | None = arg(
        None,
        "window length in seconds (default 3: music; spoken words and short sounds: about 1; "
        "--model ast: its input, 10.24 s for AudioSet's models, set by the model)",
        low=0.5,
    )
    hop_seconds: float | None = arg(
        None, "hop between windows (default 1.5; AST: half a window)", above=0
    )
    n_mels: int = arg(128, "mel bands")


@dataclass
class TrainConfig(RunConfig, DataOptions):
    split_file: list[Path] = arg(
        default_factory=list, help="split lists (train*/val*/test* files of clip names)"
    )
    split: Literal["random", "artist"] = arg(
        "random",
        "random: stratified by label, seeded (any data); artist: GTZAN's fault-filtered "
        "partition (443/197/290 clips, no artist on two sides, faulty clips left out), the "
        "honest GTZAN figure: a random split puts an artist's songs on both sides",
    )
    model: Literal["auto", "resnet18", "cnn", "ast"] = arg(
        "auto",
        "network: ResNet18 (fine-tuned from ImageNet weights), a small CNN (trained from "
        "scratch), or ast: the Audio Spectrogram Transformer pretrained on AudioSet (fine-tuned, "
        "its own Kaldi filter-bank features; see --model-source); auto: ResNet18 with ImageNet "
        "weights, the small CNN with --no-pretrained",
    )
    model_source: str | None = arg(
        None,
        "--model ast: a folder in transformers' layout (config.json, model.safetensors, "
        "preprocessor_config.json) or a Hub name (default: MIT/ast-finetuned-audioset-10-10-0.4593)",
        needs={"model": "ast"},
    )
    cv: int = arg(
        0,
        "K-fold cross-validation by clip (K >= 2): a network and the baseline per fold, then a "
        "final network on every clip (for small sets; 0: one train/val/test split)",
        low=2,
        off=0,
    )
    val_fraction: float = arg(
        0.1, "share of clips for validation (at least 1 per label)", above=0, high=0.5
    )
    test_fraction: float = arg(
        0.1, "share of clips for the held-out test (at least 1 per label)", above=0, high=0.5
    )
    epochs: int | str = arg(
        "auto",
        "training epochs, or auto: enough epochs for 2,000 optimizer steps (at least 30), stopped "
        "early when the validation loss stops improving (see --patience); small data sets need "
        "many more epochs than large ones",
        parse=epochs_flag,
    )
    patience: int | None = arg(
        None,
        "stop after this many epochs without a better validation loss (default: with --epochs "
        "auto, 10 epochs or 400 steps, whichever is longer; with --epochs N, never)",
        low=0,
    )
    batch_size: int | None = arg(None, "windows per batch (default 64; AST: 12)", low=1)
    lr: float | None = arg(
        None,
        "peak learning rate of the head (AdamW; default: 1e-3 from pretrained weights, 3e-3 "
        "from random weights)",
        above=0,
    )
    backbone_lr_ratio: float | None = arg(
        None,
        "backbone learning rate as a share of --lr (default: 0.1 from ImageNet weights, 0.05 "
        "for AST, 1 from random weights)",
    )
    weight_decay: float = arg(1e-4, "AdamW weight decay")
    warmup_epochs: float = arg(1.0, "linear warmup")
    freeze_epochs: int | None = arg(
        None,
        "train only the head for the first K epochs (default: 1 from pretrained weights where "
        "the run has more than one epoch, else 0); below --epochs",
        low=0,
        below="epochs",
    )
    pretrained: bool = arg(
        True, "start from pretrained weights (ImageNet's or AST's; --no-pretrained: random)"
    )
    weights: Path | None = arg(None, "local ImageNet ResNet18 state_dict (offline)")
    augment: bool = arg(True, "master switch for all augmentations")
    freq_mask: int = arg(24, "SpecAugment: max masked mel bands (0: off)")
    time_mask: int = arg(30, "SpecAugment: max masked frames (0: off)")
    time_shift: int = arg(16, "random time shift in frames (0: off)")
    gain_db: float = arg(6.0, "random gain in dB (0: off)")
    noise_std: float = arg(0.1, "Gaussian noise std, normalised units (0: off)")
    mixup_alpha: float = arg(0.2, "mixup alpha (0: off)")
    pitch_shift: float = arg(0.0, "random shift along the mel axis, in bands (0: off)", low=0)
    time_stretch: float = arg(
        0.0, "random tempo change, a factor in [1-s, 1+s] (0: off)", low=0, high=0.99
    )
    max_minutes: float | None = arg(None, "stop training after this many minutes", above=0)

    @property
    def from_imagenet(self) -> bool:
        return self.model == "resnet18" and (self.pretrained or self.weights is not None)

    @property
    def from_pretrained(self) -> bool:
        """Whether the network starts from pretrained weights (ImageNet's or AudioSet's)."""
        return self.from_imagenet or (self.model == "ast" and self.pretrained)

    def settle(self) -> TrainConfig:
        """``train``'s first step: the defaults that follow the model and its weights (where no
        flag gives them); the rules across flags."""
        if self.model == "auto":
            self.model = "resnet18" if self.pretrained or self.weights is not None else "cnn"
        ast = self.model == "ast"
        if ast and self.window_seconds is not None:
            raise UserError(
                "--window-seconds: AST's window is its input length (10.24 s for AudioSet's "
                "models), set by the model; give --hop-seconds only"
            )
        pretrained = self.from_pretrained
        defaults = {
            "batch_size": 12 if ast else 64,
            "lr": 1e-3 if pretrained else 3e-3,
            "backbone_lr_ratio": (0.05 if ast else 0.1) if pretrained else 1.0,
            # one head-only epoch first, where the run has more than one epoch to give it
            "freeze_epochs": 1 if pretrained and (self.epochs == AUTO or self.epochs > 1) else 0,
        }
        for name, value in defaults.items():
            if name not in self.typed:
                setattr(self, name, value)
        if self.split == "artist" and (self.cv or self.split_file):
            raise UserError("--split artist is a fixed partition: drop --cv and --split-file")
        check_bounds(self)  # --freeze-epochs below --epochs, on the default given here too
        return self


@dataclass
class EvaluateConfig(RunConfig, DataOptions):
    checkpoint: Path | None = arg(None, "checkpoint written by 'audio-net train'", required=True)
    split: Literal["test", "val", "train"] = arg(
        "test", "which split of the checkpoint's run to score"
    )
    batch_size: int = arg(256, "windows per forward pass")


@dataclass
class PredictConfig:
    files: list[Path] = arg(
        default_factory=list, help="audio files (wav, au, flac, ogg, mp3)", positional=True
    )
    checkpoint: Path | None = arg(None, "checkpoint written by 'audio-net train'")
    onnx: Path | None = arg(
        None,
        "instead of --checkpoint: a model.onnx written by 'audio-net export' (its "
        "model.json beside it; needs the export extra)",
    )
    top: int = arg(3, "labels to list per file", low=1)
    segment_seconds: float = arg(
        30.0,
        "a recording is decoded and classified this many seconds at a time (memory stays flat "
        "in its length); longer files also list each segment's top label",
        low=3.0,
        high=3600.0,
    )
    device: Literal["auto", "cpu", "cuda", "mps"] = arg("auto", "where to run")

    def __post_init__(self) -> None:
        check_bounds(self)


@dataclass
class ExportConfig:
    checkpoint: Path | None = arg(None, "checkpoint written by 'audio-net train'", required=True)
    out: Path | None = arg(None, "folder to write model.onnx and model.json into", required=True)
    format: Literal["onnx"] = arg("onnx", "export format")
    quiet: bool = arg(False, "no progress messages")


@dataclass
class BenchConfig(RunConfig, ServeBenchOptions, DataOptions):
    model: Literal["resnet18", "cnn", "ast"] = arg(
        "resnet18", "network to time (random weights; ast: AST-Base's shape, 87M parameters)"
    )
    batch_size: int | None = arg(None, "training batch size (default 128; ast: 12)")
    train_steps: int | None = arg(None, "timed training steps (default: 30 on CUDA, 3 on CPU)")
    clips: int = arg(64, "clips to featurize (the real samples are repeated if fewer)")
    checkpoint: Path | None = arg(
        None, "--serve: the checkpoint to serve (default: the newest run)"
    )


@dataclass
class DemoConfig(DemoOptions):
    max_seconds: float = arg(360.0, "longest recording accepted, in seconds", group="demo", above=0)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_bounds(self)  # --max-seconds, on a config built in code too


@dataclass
class ServeConfig(ServeOptions):
    """The classifier over HTTP for programs: POST /v1/predict with an audio file or JSON samples;
    /health and /metrics."""

    max_seconds: float = arg(600.0, "longest audio one request may send", group="serve", above=0)
    top: int = arg(3, "labels listed per answer", group="serve", low=1)


WINDOW_SECONDS, HOP_SECONDS = 3.0, 1.5  # the defaults of --window-seconds and --hop-seconds


def feature_params(opts: DataOptions) -> FeatureParams:
    """The features a command's flags ask for: our log-mel windows, or, for ``--model ast``, the
    Kaldi filter bank the AST source was trained on (its rate, mel bins and input length)."""
    # imported when called: flags are parsed (and --help answers) without torch
    from audio_net.features import FeatureParams

    if getattr(opts, "model", None) == "ast":
        from audio_net.ast_backbone import source_features, source_folder  # likewise

        folder = source_folder(opts.model_source, getattr(opts, "quiet", False))
        return source_features(folder, opts.hop_seconds)
    window = opts.window_seconds or WINDOW_SECONDS
    # a clip must fill a third of a window (1 s for music's 3 s windows, 1/3 s for 1 s words);
    # a shorter one is padded with silence
    return FeatureParams(
        window_seconds=window,
        hop_seconds=opts.hop_seconds or HOP_SECONDS,
        n_mels=opts.n_mels,
        min_seconds=min(1.0, window / 3),
    )
