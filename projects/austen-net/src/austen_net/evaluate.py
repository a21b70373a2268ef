"""``austen-net evaluate``: bits per character of a checkpoint on the validation split of the text
its run trained on (found again from the run's config), or on the texts given."""

from __future__ import annotations

from austen_net.config import EvaluateConfig
from austen_net.corpus import (
    decode_bytes,
    strip_gutenberg,
    text_files,
    validation_split_of,
)
from austen_net.inference import PROJECT, bpc_of_texts, load_model
from shared.checkpoint import run_data_settings
from shared.device import select_device
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
        if not trained.get("text"):  # the run's corpus folders unless flags name others
            cfg = run_data_settings(cfg, trained, ("corpus_dir", "data_dir"), quiet=cfg.quiet)
        texts = validation_split_of(
            trained,
            cfg.corpus_dir,
            cfg.data_dir,
            quiet=cfg.quiet,
            download=cfg.download,
            recorded=(state.get("text") or {}).get("sha256"),
        )
        source = "validation split"
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
