"""Command line of austen-net: one console script, subcommands.

Each command imports its own modules inside its function: ``--help``, and a flag refused while
parsing, answer in a fraction of a second without importing torch (about 2.5 s on its own).
"""

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


def train(cfg: TrainConfig) -> int:
    from austen_net.train import train_austen

    run, summary = train_austen(cfg)
    run.finish(summary)
    return 0


def evaluate(cfg: EvaluateConfig) -> int:
    from austen_net.evaluate import evaluate as run_evaluate

    return run_evaluate(cfg)


def generate(cfg: GenerateConfig) -> int:
    from austen_net.generate import generate as run_generate

    return run_generate(cfg)


def export(cfg: ExportConfig) -> int:
    import json

    from austen_net.export import export_hf

    print(json.dumps(export_hf(cfg.checkpoint, cfg.out)))
    return 0


def import_model(cfg: ImportConfig) -> int:
    import json

    from austen_net.pretrained import import_checkpoint

    print(json.dumps(import_checkpoint(cfg.source, cfg.out, cfg.block_size, cfg.quiet)))
    return 0


def bench(cfg: BenchConfig) -> int:
    from austen_net.bench import run_bench

    return run_bench(cfg)


def data(cfg: DataConfig) -> int:
    from austen_net.corpus import load_corpus

    load_corpus(cfg.corpus_dir, cfg.data_dir, quiet=cfg.quiet, download=cfg.action == "download")
    return 0


def demo(cfg: DemoConfig) -> int:
    from austen_net.demo import run_demo

    return run_demo(cfg)


COMMANDS = {
    "train": Command(
        TrainConfig, train, "train the transformer on the Austen corpus or on --text FILES"
    ),
    "evaluate": Command(
        EvaluateConfig, evaluate, "bits per character on the validation split or given texts"
    ),
    "generate": Command(
        GenerateConfig,
        generate,
        "stream text in the style of the model's training text (Austen's by default)",
    ),
    "export": Command(
        ExportConfig, export, "the model and tokenizer for Hugging Face transformers"
    ),
    "import": Command(
        ImportConfig,
        import_model,
        "a pretrained GPT-2 or Llama-family model (a folder or a Hub name) as a checkpoint",
    ),
    "bench": Command(BenchConfig, bench, "training and generation throughput as JSON"),
    "data": Command(DataConfig, data, "download or check the corpus"),
    "demo": Command(
        DemoConfig, demo, "write and score text with a trained model: a local web page"
    ),
}


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(PROG, DESCRIPTION, COMMANDS, argv)


if __name__ == "__main__":
    raise SystemExit(main())
