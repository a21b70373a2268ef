"""Command line of intro-nn: one console script, subcommands.

Each command imports its own modules inside its function: ``--help``, and a flag refused while
parsing, answer in a fraction of a second without importing torch (about 2.5 s on its own).
"""

from __future__ import annotations

from collections.abc import Sequence

from intro_nn.config import (
    BenchConfig,
    DataConfig,
    DemoConfig,
    ExportConfig,
    PredictConfig,
    TrainConfig,
)
from shared.cli import Command, run_cli
from shared.errors import UserError

PROG = "intro-nn"
DESCRIPTION = "Neural networks from scikit-learn to PyTorch: LendingClub loans and MNIST."
PROJECT = "intro-nn"


def train(cfg: TrainConfig) -> int:
    if cfg.target == "loan":  # scikit-learn only: no training loop, no checkpoint to resume
        from intro_nn.loan import load_loan_table, train_loan
        from shared.runs import Run

        if cfg.resume is not None:
            raise UserError(
                "--resume continues MNIST training; the loan model is refit from scratch "
                "(drop --resume, or use --target mnist)"
            )
        table = load_loan_table(cfg)  # before the run folder exists: a refusal leaves nothing
        run = Run(PROJECT, cfg.out, cfg)
        run.finish(train_loan(cfg, run, table))
        return 0
    from intro_nn.mnist_train import train_mnist

    run, summary = train_mnist(cfg)
    run.finish(summary)
    return 0


def predict(cfg: PredictConfig) -> int:
    if cfg.target == "mnist":
        from intro_nn.inference import predict_digits

        return predict_digits(cfg)
    from intro_nn.loan import predict_loan

    return predict_loan(cfg)


def export(cfg: ExportConfig) -> int:
    import json

    from intro_nn.export import export_mnist
    from intro_nn.inference import has_mnist
    from shared.checkpoint import checkpoint_in
    from shared.demo import find_run

    served = find_run(PROJECT, cfg, train_command="intro-nn train mnist", has=has_mnist)
    print(json.dumps(export_mnist(served.checkpoint or checkpoint_in(served.run), cfg.out)))
    return 0


def bench(cfg: BenchConfig) -> int:
    from intro_nn.bench import run_bench

    return run_bench(cfg)


def data(cfg: DataConfig) -> int:
    from intro_nn.loan_data import fetch_loan_csv
    from intro_nn.mnist_data import load_digits
    from shared.progress import info

    csv = fetch_loan_csv(
        None, cfg.data_dir, quiet=cfg.quiet, allow_download=cfg.action == "download"
    )
    info(f"loan: {csv}")
    digits = load_digits(cfg.data_dir, allow_download=cfg.action == "download", quiet=cfg.quiet)
    info(f"mnist: {digits.source}")
    return 0


def demo(cfg: DemoConfig) -> int:
    from intro_nn.demo import run_demo

    return run_demo(cfg)


COMMANDS = {
    "train": Command(
        TrainConfig, train, "train the loan MLP (loan), the MNIST MLP/CNN (mnist), or both"
    ),
    "predict": Command(
        PredictConfig,
        predict,
        "default probabilities for loan rows, or the digits in images (predict mnist --image)",
    ),
    "export": Command(ExportConfig, export, "the MNIST network as ONNX, with its preprocessing"),
    "bench": Command(
        BenchConfig, bench, "MNIST epoch time (on-device vs DataLoader) and loan CV time as JSON"
    ),
    "data": Command(DataConfig, data, "download or check the loan CSV and MNIST"),
    "demo": Command(DemoConfig, demo, "draw a digit, fill a loan form: a local web page"),
}


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(PROG, DESCRIPTION, COMMANDS, argv)


if __name__ == "__main__":
    raise SystemExit(main())
