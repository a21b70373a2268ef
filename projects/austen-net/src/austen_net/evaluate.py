"""``austen-net evaluate``: bits per character of a checkpoint on the validation split of the text
its run trained on (found again from the run's config), or on the texts given."""

from __future__ import annotations

from pathlib import Path

from austen_net.config import EvaluateConfig
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
from shared.errors import UserError
from shared.progress import warn
from shared.runs import Run


def evaluate(cfg: EvaluateConfig) -> int:
    """Score the checkpoint and write the summary into a run folder."""
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
