"""Retrieval scores of a model on (video id, caption) pairs: text->video and video->text recall,
median and mean rank, video->video category precision, the same text->video R@1 with every audio
token masked (what the sound adds), and, where the annotations know each clip's attributes, how
often the first hit of a text search has every attribute of the caption's clip; and
``multi-net evaluate``, those scores for a checkpoint on its test (or validation) pairs."""

from __future__ import annotations

import torch

from multi_net.catalogue import open_store
from multi_net.config import EvaluateConfig
from multi_net.dataset import check_splits, locate, standard_split
from multi_net.encoders import text_features
from multi_net.features import VideoFeatures
from multi_net.inference import PROJECT, TrainedModel
from multi_net.model import FusionModel, embed_videos
from multi_net.search import ExactSearch
from multi_net.stores import Store, check_checkpoint
from shared.checkpoint import run_data_settings
from shared.device import select_device
from shared.errors import UserError
from shared.files import cache_root
from shared.runs import Run


@torch.no_grad()
def evaluate_pairs(
    model: FusionModel,
    feats: VideoFeatures,
    pairs: list[tuple[str, str]],
    clip,
    tokenizer,
    device,
    *,
    categories: dict[str, int] | None = None,
    attributes: dict[str, dict] | None = None,
) -> dict:
    """Scores over the pairs whose video has features; {} when fewer than 2 videos remain."""
    model.eval()
    pos = feats.index()
    vids = list(dict.fromkeys(v for v, _ in pairs if v in pos))
    if len(vids) < 2:
        return {}
    col = {v: i for i, v in enumerate(vids)}
    rows = torch.tensor([pos[v] for v in vids])
    kept = [(v, c) for v, c in pairs if v in col]
    truth = torch.tensor([col[v] for v, _ in kept], device=device)
    text = model.encode_text(text_features(clip, tokenizer, [c for _, c in kept], device))
    video = embed_videos(model, feats, rows, device)
    out = text_video_metrics(text, video, truth)
    muted = text_video_metrics(
        text, embed_videos(model, feats, rows, device, mask_audio=True), truth
    )
    out["t2v_r1_no_audio"] = muted["t2v_r1"]
    out["t2v_r5_no_audio"] = muted["t2v_r5"]
    if categories and all(v in categories for v in vids):
        cats = torch.tensor([categories[v] for v in vids], device=device)
        out["v2v_category_p10"] = category_precision_at_k(video, cats, 10)
    if attributes and all(v in attributes for v in vids):
        out["attribute_match_at_1"] = attribute_match_at_1(text, video, kept, vids, attributes)
    out["videos"] = len(vids)
    return out


def attribute_match_at_1(text, video, kept, vids, attributes) -> float:
    """Share of captions whose first hit, searched as ``recommend --text`` searches (exact top-k
    over the video embeddings), has every attribute of the caption's own clip."""
    index = ExactSearch(video.float().cpu())
    hits = 0
    for (vid, _), query in zip(kept, text.float().cpu(), strict=True):
        _, rows = index.search(query, 1)
        hits += attributes[vids[int(rows[0])]] == attributes[vid]
    return round(100.0 * hits / len(kept), 2)


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
    feats = trained.features(
        {v: data.videos[v] for v, _ in pairs}, cache_root(PROJECT, cfg.cache_dir), cfg.quiet
    )
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


# -- retrieval metrics: recall@K, median and mean rank, category precision@K -------------------


def ranks_of_truth(sim: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """1-based rank of ``truth[i]`` among row i of ``sim`` (higher similarity ranks first).

    Ties count against the query: a tie with the truth ranks it after the tied items.
    """
    true_scores = sim.gather(1, truth[:, None])
    return (sim >= true_scores).sum(1)


def retrieval_metrics(ranks: torch.Tensor, prefix: str) -> dict[str, float]:
    r = ranks.float()
    return {
        f"{prefix}_r1": round(float((r <= 1).float().mean() * 100), 2),
        f"{prefix}_r5": round(float((r <= 5).float().mean() * 100), 2),
        f"{prefix}_r10": round(float((r <= 10).float().mean() * 100), 2),
        f"{prefix}_median_rank": float(r.quantile(0.5)),
        f"{prefix}_mean_rank": round(float(r.mean()), 2),
    }


def text_video_metrics(
    text_emb: torch.Tensor, video_emb: torch.Tensor, text_to_video: torch.Tensor
) -> dict:
    """t2v: each caption ranks all videos; v2t: each video ranks all captions (best of its own)."""
    sim = text_emb @ video_emb.T  # (captions, videos)
    out = retrieval_metrics(ranks_of_truth(sim, text_to_video), "t2v")
    # v2t: a video's rank is that of its best-ranked own caption
    sim_v = sim.T  # (videos, captions)
    order = sim_v.argsort(dim=1, descending=True)
    ranks = torch.empty_like(order)
    ranks.scatter_(
        1, order, torch.arange(1, sim_v.shape[1] + 1, device=sim.device).expand_as(order)
    )
    own = text_to_video[None, :] == torch.arange(len(video_emb), device=sim.device)[:, None]
    best = torch.where(own, ranks, torch.full_like(ranks, sim_v.shape[1] + 1)).min(1).values
    has_caption = own.any(1)
    out.update(retrieval_metrics(best[has_caption], "v2t"))
    return out


def category_precision_at_k(
    video_emb: torch.Tensor, categories: torch.Tensor, k: int = 10
) -> float:
    """Mean share of each video's k nearest OTHER videos that share its category."""
    sim = video_emb @ video_emb.T
    sim.fill_diagonal_(float("-inf"))
    k = min(k, len(video_emb) - 1)
    nn = sim.topk(k, dim=1).indices
    return round(float((categories[nn] == categories[:, None]).float().mean() * 100), 2)
