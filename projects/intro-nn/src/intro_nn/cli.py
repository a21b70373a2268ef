"""Command line of intro-nn: one console script; each subcommand names its function.

A function is imported only when its command runs: ``--help``, and a flag refused while parsing,
answer in a fraction of a second without importing torch (about 1.5 s on its own).
"""

from __future__ import annotations

from collections.abc import Sequence

from intro_nn.config import (
    BenchConfig,
    DemoConfig,
    ExportConfig,
    PredictConfig,
    ServeConfig,
    TrainConfig,
)
from shared.cli import Command, DataCommandConfig, run_cli

PROG = "intro-nn"
DESCRIPTION = "Neural networks from scikit-learn to PyTorch: LendingClub loans and MNIST."


def train_command(cfg: TrainConfig):
    # imported when the command runs: --help needs no torch
    from intro_nn.train import train

    return train(cfg)


def predict_command(cfg: PredictConfig):
    # imported when the command runs: --help needs no torch
    from intro_nn.predict import predict

    return predict(cfg)


def export_command(cfg: ExportConfig):
    # imported when the command runs: --help needs no torch
    from intro_nn.export import export_command

    return export_command(cfg)


def bench_command(cfg: BenchConfig):
    # imported when the command runs: --help needs no torch
    if cfg.serve:
        from intro_nn.serve import serve_bench  # the serve extra (FastAPI), for --serve only

        return serve_bench(cfg)
    from intro_nn.bench import run_bench  # slow: torch

    return run_bench(cfg)


def data_command(cfg: DataCommandConfig):
    # imported when the command runs: --help needs no torch
    from intro_nn.data import data

    return data(cfg)


def demo_command(cfg: DemoConfig):
    # imported when the command runs: --help needs no torch
    from intro_nn.demo import run_demo

    return run_demo(cfg)


def serve_command(cfg: ServeConfig):
    # imported when the command runs: --help needs no torch
    from intro_nn.serve import build_api
    from shared.serve import serve_http

    return serve_http(build_api(cfg), cfg)


COMMANDS = {
    "train": Command(
        TrainConfig,
        train_command,
        "train the loan MLP (loan), the MNIST MLP/CNN (mnist), or both",
    ),
    "predict": Command(
        PredictConfig,
        predict_command,
        "default probabilities for loan rows, or the digits in images (predict mnist --image)",
    ),
    "export": Command(
        ExportConfig,
        export_command,
        "the MNIST network as ONNX, with its preprocessing",
    ),
    "bench": Command(
        BenchConfig,
        bench_command,
        "MNIST epoch time (on-device vs DataLoader) and loan CV time as JSON",
    ),
    "data": Command(DataCommandConfig, data_command, "download or check the loan CSV and MNIST"),
    "demo": Command(DemoConfig, demo_command, "draw a digit, fill a loan form: a local web page"),
    "serve": Command(
        ServeConfig, serve_command, "the digit and loan models over HTTP for programs (batched)"
    ),
}


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(PROG, DESCRIPTION, COMMANDS, argv)


if __name__ == "__main__":
    raise SystemExit(main())
