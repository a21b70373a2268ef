"""Retrieval scores of a model on (video id, caption) pairs: text->video and video->text recall,
median and mean rank, video->video category precision, the same text->video R@1 with every audio
token masked (what the sound adds), and, where the annotations know each clip's attributes, how
often the first hit of a text search has every attribute of the caption's clip; and
``multi-net evaluate``, those scores for a checkpoint on its test (or validation) pairs."""

from __future__ import annotations

import torch

from multi_net.config import EvaluateConfig
from multi_net.dataset import check_splits, locate, standard_split
from multi_net.encoders import text_features
from multi_net.features import VideoFeatures
from multi_net.inference import PROJECT, TrainedModel, cache_dir, embed_videos
from multi_net.metrics import category_precision_at_k, text_video_metrics
from multi_net.model import FusionModel
from multi_net.search import ExactSearch
from shared.checkpoint import run_data_settings
from shared.device import select_device
from shared.errors import UserError
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
    feats = trained.features({v: data.videos[v] for v, _ in pairs}, cache_dir(cfg), cfg.quiet)
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
    run = Run(PROJECT, cfg.out, cfg)
    held_out = {} if cfg.split != "all" else {"held_out": False}  # training videos are scored too
    run.finish({"checkpoint": str(cfg.checkpoint), "split": cfg.split, **held_out, **metrics})
    return 0
