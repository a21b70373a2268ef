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
    ServeConfig,
    TrainConfig,
)
from shared.cli import Command, DataCommandConfig, run_cli

PROG = "audio-net"
DESCRIPTION = (
    "Sound classification (GTZAN genres by default, or your own label folders): log-mel "
    "spectrograms and a fine-tuned ResNet18."
)


def train_command(cfg: TrainConfig):
    # imported when the command runs: --help needs no torch
    from audio_net.train import train

    return train(cfg)


def evaluate_command(cfg: EvaluateConfig):
    # imported when the command runs: --help needs no torch
    from audio_net.evaluate import evaluate_command

    return evaluate_command(cfg)


def predict_command(cfg: PredictConfig):
    # imported when the command runs: --help needs no torch
    from audio_net.predict import predict

    return predict(cfg)


def export_command(cfg: ExportConfig):
    # imported when the command runs: --help needs no torch
    from audio_net.export import export_command

    return export_command(cfg)


def bench_command(cfg: BenchConfig):
    # imported when the command runs: --help needs no torch
    if cfg.serve:
        from audio_net.serve import serve_bench  # the serve extra (FastAPI), for --serve only

        return serve_bench(cfg)
    from audio_net.bench import run_bench  # slow: torch

    return run_bench(cfg)


def data_command(cfg: DataCommandConfig):
    # imported when the command runs: --help needs no torch
    from audio_net.dataset import data

    return data(cfg)


def demo_command(cfg: DemoConfig):
    # imported when the command runs: --help needs no torch
    from audio_net.demo import run_demo

    return run_demo(cfg)


def serve_command(cfg: ServeConfig):
    # imported when the command runs: --help needs no torch
    from audio_net.serve import build_api
    from shared.serve import serve_http

    return serve_http(build_api(cfg), cfg)


COMMANDS = {
    "train": Command(
        TrainConfig,
        train_command,
        "train a classifier on log-mel windows (GTZAN or your label folders)",
    ),
    "evaluate": Command(
        EvaluateConfig,
        evaluate_command,
        "window and clip accuracy, macro-F1, figures",
    ),
    "predict": Command(PredictConfig, predict_command, "top-3 labels for audio files, as JSON"),
    "export": Command(
        ExportConfig,
        export_command,
        "the classifier as ONNX, with its labels and preprocessing",
    ),
    "bench": Command(BenchConfig, bench_command, "featurization and training throughput as JSON"),
    "data": Command(DataCommandConfig, data_command, "download or check GTZAN"),
    "demo": Command(
        DemoConfig,
        demo_command,
        "upload or record music, see its genre: a local web page",
    ),
    "serve": Command(
        ServeConfig, serve_command, "the classifier over HTTP for programs (batched, /metrics)"
    ),
}


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(PROG, DESCRIPTION, COMMANDS, argv)


if __name__ == "__main__":
    raise SystemExit(main())
