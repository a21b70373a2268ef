"""Retrieval scores of a model on (video id, caption) pairs: text->video and video->text recall,
median and mean rank, video->video category precision, the same text->video R@1 with every audio
token masked (what the sound adds), and, where the annotations know each clip's attributes, how
often the first hit of a text search has every attribute of the caption's clip."""

from __future__ import annotations

import torch

from multi_net.encoders import text_features
from multi_net.features import VideoFeatures
from multi_net.inference import embed_videos
from multi_net.metrics import category_precision_at_k, text_video_metrics
from multi_net.model import FusionModel
from multi_net.search import ExactSearch


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
