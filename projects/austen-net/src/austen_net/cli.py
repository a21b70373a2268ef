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
    TrainConfig,
)
from shared.cli import Command, run_cli

PROG = "austen-net"
DESCRIPTION = (
    "A decoder-only transformer trained on Jane Austen's eight works (the default) or on your own "
    "text (train --text)."
)

COMMANDS = {
    "train": Command(
        TrainConfig,
        "austen_net.train:train_austen",
        "train the transformer on the Austen corpus or on --text FILES",
    ),
    "evaluate": Command(
        EvaluateConfig,
        "austen_net.evaluate:evaluate",
        "bits per character on the validation split or given texts",
    ),
    "generate": Command(
        GenerateConfig,
        "austen_net.generate:generate",
        "stream text in the style of the model's training text (Austen's by default)",
    ),
    "export": Command(
        ExportConfig,
        "austen_net.export:export_command",
        "the model and tokenizer for Hugging Face transformers",
    ),
    "import": Command(
        ImportConfig,
        "austen_net.importing:import_command",
        "a pretrained GPT-2 or Llama-family model (a folder or a Hub name) as a checkpoint, or peft adapters on their base",
    ),
    "bench": Command(
        BenchConfig, "austen_net.bench:run_bench", "training and generation throughput as JSON"
    ),
    "data": Command(DataConfig, "austen_net.data:data", "download or check the corpus"),
    "demo": Command(
        DemoConfig,
        "austen_net.demo:run_demo",
        "write and score text with a trained model: a local web page",
    ),
}


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(PROG, DESCRIPTION, COMMANDS, argv)


if __name__ == "__main__":
    raise SystemExit(main())
