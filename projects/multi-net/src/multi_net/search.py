"""Indexes of video embeddings, exact top-k search, and the trained model loaded for inference."""

from __future__ import annotations

import types
from pathlib import Path

import torch

from multi_net.encoders import load_clip, text_features
from multi_net.features import load_video_features, video_files
from multi_net.model import FusionConfig, FusionModel
from multi_net.train import PROJECT, clip_identity, embed_videos
from multi_net.video import DecodeParams
from shared.atomic import atomic_path
from shared.checkpoint import load_checkpoint
from shared.config import UserError

INDEX_FORMAT = "multi-net-index-v1"


class Embedder:
    """Everything needed to embed videos and texts as the checkpoint's model does."""

    def __init__(self, checkpoint: Path, device) -> None:
        state = load_checkpoint(checkpoint, project=PROJECT, map_location="cpu")
        cfg = types.SimpleNamespace(**state["config"])
        cfg.clip_weights = Path(cfg.clip_weights) if cfg.clip_weights else None
        self.clip, self.tokenizer, size = load_clip(
            cfg.clip_model,
            cfg.clip_pretrained,
            cfg.clip_weights,
            # the checkpoint carries its own CLIP weights when they were random or fine-tuned
            cfg.pretrained and state.get("clip_state") is None and not state.get("end_to_end"),
        )
        weights = state["model"]
        if state.get("end_to_end"):  # fine-tuned CLIP towers live inside the model's state
            clip_state = {k[5:]: v for k, v in weights.items() if k.startswith("clip.")}
            weights = {k[7:]: v for k, v in weights.items() if k.startswith("fusion.")}
        else:
            clip_state = state.get("clip_state")
        if clip_state is not None:
            self.clip.load_state_dict(clip_state)
        self.clip = self.clip.to(device).eval()
        self.model = FusionModel(FusionConfig(**state["fusion_config"]))
        self.model.load_state_dict(weights)
        self.model = self.model.to(device).eval()
        self.params = DecodeParams(
            num_frames=state["decode"]["num_frames"], size=state["decode"]["size"]
        )
        self.clip_id = clip_identity(cfg, cfg.seed)
        if state.get(
            "end_to_end"
        ):  # features of a fine-tuned tower belong to this checkpoint alone
            st = Path(checkpoint).stat()
            self.clip_id = f"finetuned:{Path(checkpoint).resolve()}:{st.st_size}:{st.st_mtime_ns}"
        self.checkpoint, self.device = Path(checkpoint), device

    def videos(self, paths: dict[str, Path], cache: Path | None, quiet: bool = True):
        feats = load_video_features(
            paths, self.params, self.clip, self.clip_id, self.device, cache, quiet=quiet
        )
        emb = embed_videos(self.model, feats, torch.arange(len(feats.ids)), self.device)
        return feats, emb

    @torch.no_grad()
    def text(self, query: str) -> torch.Tensor:
        return self.model.encode_text(
            text_features(self.clip, self.tokenizer, [query], self.device)
        )[0]


def build_index(
    embedder: Embedder,
    videos_dir: Path,
    out: Path,
    cache: Path | None,
    metadata: dict[str, dict],
    quiet: bool,
) -> dict:
    paths = video_files(videos_dir)
    if not paths:
        raise UserError(f"{videos_dir} holds no videos")
    feats, emb = embedder.videos(paths, cache, quiet)
    index = {
        "format": INDEX_FORMAT,
        "checkpoint": str(embedder.checkpoint.resolve()),
        "ids": feats.ids,
        "paths": [str(paths[v].resolve()) for v in feats.ids],
        "embeddings": emb.float().cpu(),
        "has_audio": feats.has_audio,
        "metadata": [metadata.get(v, {}) for v in feats.ids],
    }
    with atomic_path(out) as tmp:
        torch.save(index, tmp)
    return {
        "index": str(out),
        "videos": len(feats.ids),
        "skipped": len(feats.skipped),
        "with_audio": int(feats.has_audio.sum()),
        "dim": int(emb.shape[1]),
    }


def load_index(path: Path) -> dict:
    if path is None or not Path(path).is_file():
        raise UserError(f"--index {path}: no such file (build one with 'multi-net index')")
    try:
        index = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise UserError(f"{path} is not a readable index ({exc.__class__.__name__})") from exc
    if not isinstance(index, dict) or index.get("format") != INDEX_FORMAT:
        raise UserError(f"{path} is not a multi-net index")
    return index


def top_k(
    embeddings: torch.Tensor,
    query: torch.Tensor,
    k: int,
    exclude: int | None = None,
    chunk: int = 262_144,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact inner-product top-k over (N, D) embeddings, in chunks to bound memory."""
    best_s, best_i = None, None
    k = min(k, len(embeddings) - (exclude is not None))
    for start in range(0, len(embeddings), chunk):
        scores = embeddings[start : start + chunk] @ query.to(embeddings.dtype)
        if exclude is not None and start <= exclude < start + chunk:
            scores[exclude - start] = float("-inf")
        s, i = scores.float().topk(min(k, len(scores)))
        i = i + start
        if best_s is None:
            best_s, best_i = s, i
        else:
            merged_s, order = torch.cat([best_s, s]).topk(k)
            best_s, best_i = merged_s, torch.cat([best_i, i])[order]
    return best_s, best_i


class ExactSearch:
    """Exact top-k over unit-norm embeddings, reading half the bytes of a plain fp32 scan.

    A bf16 copy is scanned first (memory-bound: half the traffic); the best ``candidates`` are
    re-scored in fp32. bf16 rounds each score by at most ``eps``, so when the last candidate's
    approximate score plus ``eps`` is below the k-th exact score, nothing outside the candidates
    can be in the true top k: the answer is certified exact. Otherwise it falls back to fp32.
    """

    def __init__(self, embeddings: torch.Tensor, candidates: int = 256) -> None:
        self.fp32 = embeddings.float().contiguous()
        self.bf16 = self.fp32.to(torch.bfloat16)
        self.candidates = candidates
        self.fallbacks = 0

    def search(
        self, query: torch.Tensor, k: int, exclude: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        n = len(self.fp32)
        k = min(k, n - (exclude is not None))
        m = min(n, max(self.candidates, 4 * k) + (exclude is not None))
        if m >= n:
            return top_k(self.fp32, query, k, exclude)
        query = query.float()
        approx = (self.bf16 @ query.to(torch.bfloat16)).float()
        if exclude is not None:
            approx[exclude] = float("-inf")
        cand_scores, cand = approx.topk(m)
        exact = self.fp32[cand] @ query
        if exclude is not None:
            exact[cand == exclude] = float("-inf")
        best, order = exact.topk(k)
        # bf16 keeps 8 mantissa bits: each element is off by <= 2^-9 relative, so a score of unit
        # vectors is off by < 2^-8 * |query| (with margin for the accumulation).
        eps = 2.0**-7 * float(query.norm())
        if float(cand_scores[-1]) + eps < float(best[-1]):
            return best, cand[order]
        self.fallbacks += 1
        return top_k(self.fp32, query, k, exclude)
