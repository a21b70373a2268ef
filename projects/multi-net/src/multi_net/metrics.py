"""Retrieval metrics: recall@K, median and mean rank, and category precision@K."""

from __future__ import annotations

import torch


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
