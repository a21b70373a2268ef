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
    TrainConfig,
)
from shared.cli import Command, run_cli
from shared.config import DataCommandConfig

PROG = "intro-nn"
DESCRIPTION = "Neural networks from scikit-learn to PyTorch: LendingClub loans and MNIST."

COMMANDS = {
    "train": Command(
        TrainConfig,
        "intro_nn.train:train",
        "train the loan MLP (loan), the MNIST MLP/CNN (mnist), or both",
    ),
    "predict": Command(
        PredictConfig,
        "intro_nn.predict:predict",
        "default probabilities for loan rows, or the digits in images (predict mnist --image)",
    ),
    "export": Command(
        ExportConfig,
        "intro_nn.export:export_command",
        "the MNIST network as ONNX, with its preprocessing",
    ),
    "bench": Command(
        BenchConfig,
        "intro_nn.bench:run_bench",
        "MNIST epoch time (on-device vs DataLoader) and loan CV time as JSON",
    ),
    "data": Command(
        DataCommandConfig, "intro_nn.data:data", "download or check the loan CSV and MNIST"
    ),
    "demo": Command(
        DemoConfig, "intro_nn.demo:run_demo", "draw a digit, fill a loan form: a local web page"
    ),
}


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(PROG, DESCRIPTION, COMMANDS, argv)


if __name__ == "__main__":
    raise SystemExit(main())
