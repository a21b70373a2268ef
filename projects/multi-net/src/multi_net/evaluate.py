"""``multi-net evaluate``: a checkpoint's retrieval scores (``model.evaluate_pairs``) on its test
(or validation) pairs, and with ``--index`` the text search users get from a store."""

from __future__ import annotations

from multi_net.catalogue import open_store
from multi_net.config import EvaluateConfig
from multi_net.dataset import check_splits, locate, standard_split
from multi_net.inference import PROJECT, TrainedModel
from multi_net.model import evaluate_pairs
from multi_net.stores import Store, check_checkpoint
from shared.checkpoint import run_data_settings
from shared.device import select_device
from shared.errors import UserError
from shared.runs import Run


def evaluate_command(cfg: EvaluateConfig) -> int:
    """``multi-net evaluate``: the checkpoint's own split of its own data (unless flags name other
    data), the same split its training held out; ``--split all`` scores every captioned video."""
    device = select_device(cfg.device)
    store = open_store(cfg.index, cfg.collection) if cfg.index is not None else None
    if store is not None:  # refused before a video is decoded
        check_checkpoint(store, cfg.checkpoint, "evaluate that checkpoint with it")
    trained = TrainedModel(cfg.checkpoint, device)
    trained_with = trained.state["config"]
    fields = ("videos", "annotations", "data_dir")
    cfg = run_data_settings(cfg, trained_with, fields, quiet=cfg.quiet)
    data = locate(cfg.videos, cfg.annotations, cfg.data_dir, download=cfg.download, quiet=cfg.quiet)
    splits = standard_split(
        data,
        trained_with.get("train_split", "9k"),
        trained_with.get("seed", 0),
        trained_with.get("val_videos", 500),
    )
    if cfg.split == "all":
        pairs = [(v, data.ann.captions[v][0]) for v in data.videos if data.ann.captions.get(v)]
    else:
        check_splits(splits)
        pairs = splits.test if cfg.split == "test" else splits.val
    if len({v for v, _ in pairs}) < 2:
        hint = "" if cfg.split == "all" else ": --split all scores every captioned video"
        raise UserError(f"fewer than 2 {cfg.split} videos with captions on disk{hint}")
    feats = trained.features({v: data.videos[v] for v, _ in pairs}, cfg.cache_dir, cfg.quiet)
    metrics = evaluate_pairs(
        trained.model,
        feats,
        pairs,
        trained.clip,
        trained.tokenizer,
        device,
        categories=data.ann.categories,
        attributes=data.ann.attributes,
    )
    if store is not None:
        metrics |= store_metrics(store, trained, pairs, cfg)
    run = Run(PROJECT, cfg.out, cfg)
    held_out = {} if cfg.split != "all" else {"held_out": False}  # training videos are scored too
    run.finish({"checkpoint": str(cfg.checkpoint), "split": cfg.split, **held_out, **metrics})
    return 0


def store_metrics(store: Store, trained: TrainedModel, pairs, cfg: EvaluateConfig) -> dict:
    """Text search as users get it from ``--index``: each caption's top 10 over the whole
    catalogue in the store (its stored vectors, its search, exact or approximate), and how often
    the caption's own video is first, in the top 5, in the top 10."""
    stored = set(store.paths())
    kept = [(v, c) for v, c in pairs if v in stored]
    if not kept:
        raise UserError(f"--index {store.location} holds none of the {cfg.split} videos")
    ranks = []
    for start in range(0, len(kept), 256):
        part = kept[start : start + 256]
        found = store.search(trained.texts([c for _, c in part]), 10)
        for (vid, _), hits in zip(part, found, strict=True):
            ids = [h["video_id"] for h in hits]
            ranks.append(ids.index(vid) if vid in ids else 10)
    at = {k: round(100.0 * sum(r < k for r in ranks) / len(ranks), 2) for k in (1, 5, 10)}
    return {
        "index": store.location,
        "index_store": store.kind,
        "index_videos": len(stored),
        "index_pairs": len(kept),
        **{f"index_t2v_r{k}": v for k, v in at.items()},
    }
