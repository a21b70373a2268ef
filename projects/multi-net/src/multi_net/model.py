"""Early fusion of video and audio into one embedding, trained against CLIP text embeddings.

Frames -> CLIP image features -> projected tokens (+ frame position and modality embeddings);
audio -> log-mel CNN or ResNet18, or CLAP's pretrained embedding -> one projected token (+ modality
embedding). A small transformer fuses
[CLS, frame tokens, audio token]; the CLS output, projected and normalised, is the video
embedding. A missing audio track (or modality dropout in training) masks the audio token out, so
the model works without audio. Captions go through CLIP's text tower and a projection into the
same space, so text can search videos.

Its scores on (video id, caption) pairs, what training validates on and ``evaluate`` reports:
text->video and video->text recall, median and mean rank, video->video category precision, the
same text->video R@1 with every audio token masked (what the sound adds), and, where the
annotations know each clip's attributes, how often a text search's first hit has every attribute
of the caption's clip.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dnf
import torch.nn.functional as F
from torch import nn

from multi_net.encoders import audio_encoder, text_features

if TYPE_CHECKING:
    from multi_net.features import VideoFeatures


@dataclass
class FusionConfig:
    clip_dim: int = 512
    embed_dim: int = 512
    fusion_dim: int = 256
    fusion_layers: int = 2
    fusion_heads: int = 4
    num_frames: int = 8
    n_mels: int = 64
    audio_encoder: Literal["cnn", "resnet18", "clap"] = "cnn"
    audio_width: int = 64  # the CNN's base width (its channels: w/2, w, 2w, 2w)
    audio_dim: int = 512  # clap: the width of CLAP's audio embedding
    temporal: Literal["transformer", "mean"] = "transformer"
    motion: bool = False  # add a token per pair of consecutive frames: their feature difference
    modality_dropout: float = 0.3
    dropout: float = 0.1

    def as_dict(self) -> dict:
        return asdict(self)


class FusionModel(nn.Module):
    def __init__(self, cfg: FusionConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.fusion_dim
        self.frame_proj = nn.Linear(cfg.clip_dim, d)
        self.audio = audio_encoder(cfg.audio_encoder, cfg.n_mels, d, cfg.audio_width, cfg.audio_dim)
        self.modality = nn.Parameter(torch.zeros(3 if cfg.motion else 2, d))  # video, audio, motion
        self.motion_proj = nn.Linear(cfg.clip_dim, d) if cfg.motion else None
        self.frame_pos = nn.Parameter(torch.zeros(cfg.num_frames, d))
        self.cls = nn.Parameter(torch.zeros(1, 1, d))
        layer = nn.TransformerEncoderLayer(
            d, cfg.fusion_heads, 4 * d, cfg.dropout, batch_first=True, norm_first=True
        )
        self.fusion = nn.TransformerEncoder(layer, cfg.fusion_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        self.video_out = nn.Linear(d, cfg.embed_dim)
        # text: CLIP features plus a learned residual map into the shared space
        self.text_out = nn.Linear(cfg.clip_dim, cfg.embed_dim)
        self.video_skip = nn.Linear(cfg.clip_dim, cfg.embed_dim, bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
        for p in (self.modality, self.frame_pos, self.cls):
            nn.init.normal_(p, std=0.02)
        if cfg.clip_dim == cfg.embed_dim:  # start from CLIP's own alignment
            nn.init.eye_(self.text_out.weight)
            nn.init.zeros_(self.text_out.bias)
            nn.init.eye_(self.video_skip.weight)
        nn.init.zeros_(self.video_out.weight)
        nn.init.zeros_(self.video_out.bias)

    def encode_video(
        self, frame_feats: torch.Tensor, logmel: torch.Tensor, has_audio: torch.Tensor
    ) -> torch.Tensor:
        """frame_feats (B, K, clip_dim), logmel (B, n_mels, T) (or CLAP's (B, audio_dim) embedding),
        has_audio (B,) -> (B, embed_dim)."""
        b, k, _ = frame_feats.shape
        frame_feats = frame_feats.float()
        use_audio = has_audio.bool()
        if self.training and self.cfg.modality_dropout > 0:
            use_audio = use_audio & (
                torch.rand(b, device=use_audio.device) >= self.cfg.modality_dropout
            )
        frames = self.frame_proj(frame_feats) + self.modality[0]
        if self.cfg.temporal == "mean":
            frames = frames.mean(1, keepdim=True)
        else:
            frames = frames + self.frame_pos[:k]
        if self.motion_proj is not None and k > 1:
            # what changed between consecutive frames: direction lives in the ORDER of frames, and
            # an attention average over frame tokens alone is blind to order
            delta = frame_feats[:, 1:] - frame_feats[:, :-1]
            motion = self.motion_proj(delta) + self.modality[2] + self.frame_pos[: k - 1]
            frames = torch.cat([frames, motion], dim=1)
        audio = (self.audio(logmel.float()) + self.modality[1]).unsqueeze(1)
        tokens = torch.cat([self.cls.expand(b, -1, -1), frames, audio], dim=1)
        pad = torch.zeros(b, tokens.shape[1], dtype=torch.bool, device=tokens.device)
        pad[:, -1] = ~use_audio
        fused = self.norm(self.fusion(tokens, src_key_padding_mask=pad)[:, 0])
        video = self.video_skip(frame_feats.mean(1)) + self.video_out(fused)
        return F.normalize(video, dim=-1)

    def encode_text(self, text_feats: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.text_out(text_feats.float()), dim=-1)

    def forward(self, frame_feats, logmel, has_audio, text_feats, frame_noise=None):
        """Training forward (what DistributedDataParallel wraps): video and text embeddings, a second
        augmented video view when ``frame_noise`` is given, and the temperature's log-scale."""
        video = self.encode_video(frame_feats, logmel, has_audio)
        other = None
        if frame_noise is not None:
            other = self.encode_video(frame_feats.float() + 0.05 * frame_noise, logmel, has_audio)
        return video, self.encode_text(text_feats), other, self.logit_scale


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Under torchrun, ``x`` from every rank in rank order, gradients flowing back to each rank's
    part: every rank's rows are negatives for every other rank's. One process: ``x`` itself."""
    if not (dist.is_available() and dist.is_initialized()):
        return x
    return torch.cat(dnf.all_gather(x), dim=0)


def info_nce(a: torch.Tensor, b: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE: row i of ``a`` matches row i of ``b``; every other row is a negative."""
    logits = logit_scale.clamp(max=math.log(100)).exp() * a @ b.T
    target = torch.arange(len(a), device=a.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


def make_loss(vv_weight: float):
    """The training loss: InfoNCE of videos against their captions over the global batch, plus
    ``vv_weight`` times a second view's InfoNCE against the first (0: none)."""

    def loss_fn(model, batch):
        frames, logmel, has_audio, text, noise = batch
        video, text_emb, other, scale = model(
            frames, logmel, has_audio, text, noise if vv_weight > 0 else None
        )
        # under torchrun every rank's videos and captions are negatives for every other rank's
        video, text_emb = gather_with_grad(video), gather_with_grad(text_emb)
        loss = info_nce(video, text_emb, scale)
        metrics = {"nce": loss.detach()}
        if other is not None:
            # the second view: perturbed frame features and another modality-dropout draw
            vv = info_nce(video, gather_with_grad(other), scale)
            loss = loss + vv_weight * vv
            metrics["vv"] = vv.detach()
        return loss, metrics

    return loss_fn


@torch.no_grad()
def embed_videos(
    model: FusionModel,
    feats: VideoFeatures,
    rows: torch.Tensor,
    device,
    batch: int = 256,
    mask_audio: bool = False,
) -> torch.Tensor:
    """Video embeddings of ``feats``' rows; ``mask_audio`` hides every audio token (an ablation)."""
    model.eval()
    out = []
    for i in range(0, len(rows), batch):
        idx = rows[i : i + batch]
        has_audio = feats.has_audio[idx].to(device)
        out.append(
            model.encode_video(
                feats.frames[idx].to(device),
                feats.audio[idx].to(device),
                torch.zeros_like(has_audio) if mask_audio else has_audio,
            )
        )
    return torch.cat(out) if out else torch.zeros(0, model.cfg.embed_dim, device=device)


def decay_groups(
    named_parameters: Iterable[tuple[str, nn.Parameter]], weight_decay: float, **group: Any
) -> list[dict[str, Any]]:
    """Parameter groups for AdamW: weight decay on matrices (weights, embeddings), none on vectors
    (biases, norm gains) and scalars (a learnable temperature). Extra keys go into both groups."""
    params = [p for _, p in named_parameters if p.requires_grad]
    return [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay, **group},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0, **group},
    ]


# -- scores on (video id, caption) pairs: what training validates on and 'evaluate' reports --


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
    """Share of captions whose first hit, the exact top 1 that ``recommend --text`` finds over
    the video embeddings, has every attribute of the caption's own clip."""
    first = (text.float() @ video.float().T).argmax(1).tolist()
    hits = sum(attributes[vids[f]] == attributes[v] for (v, _), f in zip(kept, first, strict=True))
    return round(100.0 * hits / len(kept), 2)


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
