"""Command line of audio-net: one console script; each subcommand names its function.

A function is imported only when its command runs: ``--help``, and a flag refused while parsing,
answer in a fraction of a second without importing torch (about 1.5 s on its own).
"""

from __future__ import annotations

from collections.abc import Sequence

from audio_net.config import (
    BenchConfig,
    DemoConfig,
    EvaluateConfig,
    ExportConfig,
    PredictConfig,
    TrainConfig,
)
from shared.cli import Command, run_cli
from shared.config import DataCommandConfig

PROG = "audio-net"
DESCRIPTION = (
    "Sound classification (GTZAN genres by default, or your own label folders): log-mel "
    "spectrograms and a fine-tuned ResNet18."
)

COMMANDS = {
    "train": Command(
        TrainConfig,
        "audio_net.train:train",
        "train a classifier on log-mel windows (GTZAN or your label folders)",
    ),
    "evaluate": Command(
        EvaluateConfig,
        "audio_net.evaluate:evaluate_command",
        "window and clip accuracy, macro-F1, figures",
    ),
    "predict": Command(
        PredictConfig, "audio_net.predict:predict", "top-3 labels for audio files, as JSON"
    ),
    "export": Command(
        ExportConfig,
        "audio_net.export:export_command",
        "the classifier as ONNX, with its labels and preprocessing",
    ),
    "bench": Command(
        BenchConfig, "audio_net.bench:run_bench", "featurization and training throughput as JSON"
    ),
    "data": Command(DataCommandConfig, "audio_net.data:data", "download or check GTZAN"),
    "demo": Command(
        DemoConfig,
        "audio_net.demo:run_demo",
        "upload or record music, see its genre: a local web page",
    ),
}


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(PROG, DESCRIPTION, COMMANDS, argv)


if __name__ == "__main__":
    raise SystemExit(main())
