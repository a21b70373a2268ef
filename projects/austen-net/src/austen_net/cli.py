"""Command line of austen-net: one console script; each subcommand names its function, imported
only when it runs, so ``--help`` and a refused flag answer without importing torch."""

from __future__ import annotations

from collections.abc import Sequence

from austen_net.config import (
    BenchConfig,
    DataConfig,
    DemoConfig,
    EvaluateConfig,
    ExportConfig,
    GenerateConfig,
    ImportConfig,
    ServeConfig,
    TrainConfig,
)
from shared.cli import Command, run_cli

PROG = "austen-net"
DESCRIPTION = (
    "A decoder-only transformer trained on Jane Austen's eight works (the default) or on your own "
    "text (train --text)."
)


def train_command(cfg: TrainConfig):
    # imported when the command runs: --help needs no torch
    from austen_net.train import train

    return train(cfg)


def evaluate_command(cfg: EvaluateConfig):
    # imported when the command runs: --help needs no torch
    from austen_net.evaluate import evaluate

    return evaluate(cfg)


def generate_command(cfg: GenerateConfig):
    # imported when the command runs: --help needs no torch
    from austen_net.generate import generate_command

    return generate_command(cfg)


def export_command(cfg: ExportConfig):
    # imported when the command runs: --help needs no torch
    from austen_net.export import export_command

    return export_command(cfg)


def import_command(cfg: ImportConfig):
    # imported when the command runs: --help needs no torch
    from austen_net.importing import import_command

    return import_command(cfg)


def bench_command(cfg: BenchConfig):
    # imported when the command runs: --help needs no torch
    if cfg.serve:
        from austen_net.serve import serve_bench  # the serve extra (FastAPI), for --serve only

        return serve_bench(cfg)
    from austen_net.bench import run_bench  # slow: torch

    return run_bench(cfg)


def data_command(cfg: DataConfig):
    # imported when the command runs: --help needs no torch
    from austen_net.data import data

    return data(cfg)


def demo_command(cfg: DemoConfig):
    # imported when the command runs: --help needs no torch
    from austen_net.demo import run_demo

    return run_demo(cfg)


def serve_command(cfg: ServeConfig):
    # imported when the command runs: --help needs no torch
    from austen_net.serve import build_api
    from shared.serve import serve_http

    return serve_http(build_api(cfg), cfg)


COMMANDS = {
    "train": Command(
        TrainConfig,
        train_command,
        "train the transformer on the Austen corpus or on --text FILES",
    ),
    "evaluate": Command(
        EvaluateConfig,
        evaluate_command,
        "bits per character on the validation split or given texts",
    ),
    "generate": Command(
        GenerateConfig,
        generate_command,
        "stream text in the style of the model's training text (Austen's by default)",
    ),
    "export": Command(
        ExportConfig,
        export_command,
        "the model and tokenizer for Hugging Face transformers",
    ),
    "import": Command(
        ImportConfig,
        import_command,
        "a pretrained GPT-2 or Llama-family model (a folder or a Hub name) as a checkpoint, or peft adapters on their base",
    ),
    "bench": Command(BenchConfig, bench_command, "training and generation throughput as JSON"),
    "data": Command(DataConfig, data_command, "download or check the corpus"),
    "demo": Command(
        DemoConfig,
        demo_command,
        "write and score text with a trained model: a local web page",
    ),
    "serve": Command(
        ServeConfig,
        serve_command,
        "OpenAI's completions API over HTTP for programs (batched, with /health and /metrics)",
    ),
}


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(PROG, DESCRIPTION, COMMANDS, argv)


if __name__ == "__main__":
    raise SystemExit(main())
