"""Command line of austen-net: one console script, subcommands.

Each command imports its own modules inside its function: ``--help``, and a flag refused while
parsing, answer in a fraction of a second without importing torch (about 2.5 s on its own).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

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
from shared.errors import UserError

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
    from austen_net.corpus import (
        decode_bytes,
        describe_text,
        split_corpus,
        strip_gutenberg,
        text_files,
        training_works,
    )
    from austen_net.inference import PROJECT, bpc_of_texts, load_model
    from shared.checkpoint import run_data_settings
    from shared.device import select_device
    from shared.progress import warn
    from shared.runs import Run

    device = select_device(cfg.device)
    model, tok, state = load_model(cfg.checkpoint, device, cfg.weights)
    if cfg.text:
        files = text_files(cfg.text)
        texts = [strip_gutenberg(decode_bytes(p.read_bytes(), str(p))) for p in files]
        source = [str(p) for p in files]
    else:  # the validation split of what the run trained on
        trained = state.get("config", {})
        own = [Path(p) for p in trained.get("text") or []]
        if own:
            missing = [str(p) for p in own if not p.exists()]
            if missing:
                raise UserError(
                    f"the run trained on text that is gone ({', '.join(missing)}): "
                    "give --text FILE to score other text"
                )
            works = training_works(own, None, None, quiet=cfg.quiet)
            recorded = (state.get("text") or {}).get("sha256")
            if recorded and recorded != describe_text(own, works)["sha256"]:
                warn("the run's text files changed since training: its validation split moved")
        else:
            cfg = run_data_settings(cfg, trained, ("corpus_dir", "data_dir"), quiet=cfg.quiet)
            works = training_works(
                [], cfg.corpus_dir, cfg.data_dir, quiet=cfg.quiet, download=cfg.download
            )
        split = split_corpus(
            works, trained.get("val_fraction", 0.1), tuple(trained.get("holdout_works", ()))
        )
        texts, source = split.val, "validation split"
    result = bpc_of_texts(model, tok, texts, cfg.batch_size, device, cfg.precision)
    run = Run(PROJECT, cfg.out, cfg)
    run.finish(
        {
            "checkpoint": str(cfg.checkpoint),
            "source": source,
            "step": int(state["step"]),
            "weights": cfg.weights,
            **result,
        }
    )
    return 0


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
