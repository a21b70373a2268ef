"""``multi-net train``: contrastive video(+audio) <-> caption training, evaluated on 1k-A."""

from __future__ import annotations

import types
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from multi_net.config import TrainConfig
from multi_net.dataset import locate, standard_split
from multi_net.encoders import CLIP_MEAN, CLIP_STD, clip_dim, load_clip, text_features
from multi_net.features import VideoFeatures, load_video_features
from multi_net.metrics import category_precision_at_k, text_video_metrics
from multi_net.model import FusionConfig, FusionModel, info_nce
from multi_net.video import DecodeCache, DecodeParams
from shared.checkpoint import CheckpointManager, load_checkpoint, resolve_resume
from shared.config import UserError, to_jsonable
from shared.device import make_generator, seed_everything, select_device
from shared.distributed import gather_with_grad, is_main, world_size
from shared.download import data_root
from shared.plots import LivePlot
from shared.progress import info
from shared.runs import Run, runs_root
from shared.schedules import warmup_cosine
from shared.training import Trainer, adamw, fit, resume_run

PROJECT = "multi-net"


def cache_root(cfg) -> Path:
    return cfg.cache_dir if cfg.cache_dir is not None else data_root(None) / "cache" / "multi-net"


def clip_identity(cfg, seed: int) -> str:
    """What the frame features depend on: the CLIP model and exactly which weights it has."""
    if cfg.clip_weights is not None:
        st = Path(cfg.clip_weights).stat()
        return f"{cfg.clip_model}|file:{Path(cfg.clip_weights).name}:{st.st_size}:{st.st_mtime_ns}"
    if cfg.pretrained:
        return f"{cfg.clip_model}|tag:{cfg.clip_pretrained}"
    return f"{cfg.clip_model}|random:{seed}"


class EncodedData:
    """Cached frame features/log-mels of a set of videos, and CLIP text features of their captions."""

    def __init__(
        self, feats: VideoFeatures, captions: dict[str, list[str]], clip, tokenizer, device
    ) -> None:
        self.feats = feats
        self.pos = feats.index()
        texts, owner = [], []
        for i, vid in enumerate(feats.ids):
            for c in captions.get(vid, []):
                texts.append(c)
                owner.append(i)
        self.texts = texts
        self.text_owner = torch.tensor(owner, dtype=torch.long)
        self.text_feats = text_features(clip, tokenizer, texts, device).half().cpu()
        starts = torch.zeros(len(feats.ids) + 1, dtype=torch.long)
        starts[1:] = torch.bincount(self.text_owner, minlength=len(feats.ids)).cumsum(0)
        self.caption_start = starts  # captions of video i: texts[starts[i]:starts[i+1]]

    def videos(self, idx: torch.Tensor, device):
        f = self.feats
        return f.frames[idx].to(device), f.logmel[idx].to(device), f.has_audio[idx].to(device)


class ContrastiveBatches:
    """Step -> a batch of training videos, each with one caption drawn with a (seed, step) generator.

    The batch is GLOBAL (the same on every rank); under torchrun each rank keeps its share.
    """

    def __init__(
        self, data: EncodedData, train_rows: torch.Tensor, batch: int, seed: int, device
    ) -> None:
        self.data, self.rows, self.batch, self.seed, self.device = (
            data,
            train_rows,
            batch,
            seed,
            device,
        )
        self.steps_per_epoch = max(1, len(train_rows) // batch)
        self._epoch, self._perm = -1, None

    def select(self, step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Generator]:
        """(video rows, caption indices, the step's generator)."""
        epoch, i = divmod(step, self.steps_per_epoch)
        if epoch != self._epoch:
            self._perm = self.rows[
                torch.randperm(len(self.rows), generator=make_generator(self.seed, epoch))
            ]
            self._epoch = epoch
        idx = self._perm[i * self.batch : (i + 1) * self.batch]
        g = make_generator(self.seed, 5_000_000 + step)
        lo, hi = self.data.caption_start[idx], self.data.caption_start[idx + 1]
        return idx, lo + (torch.rand(len(idx), generator=g) * (hi - lo)).long(), g

    def __call__(self, step: int):
        idx, cap, g = self.select(step)
        frames, logmel, has_audio = self.data.videos(idx, self.device)
        view_noise = torch.randn(frames.shape, generator=g).to(self.device)
        return [(frames, logmel, has_audio, self.data.text_feats[cap].to(self.device), view_noise)]


class FrameBatches(ContrastiveBatches):
    """For --no-freeze-encoders: decoded frames (from the decode cache) and caption tokens."""

    def __init__(
        self, data, train_rows, batch, seed, device, cache: DecodeCache, tokenizer, clip_dim: int
    ):
        super().__init__(data, train_rows, batch, seed, device)
        self.cache, self.tokenizer, self.clip_dim = cache, tokenizer, clip_dim

    def __call__(self, step: int):
        idx, cap, g = self.select(step)
        frames = load_frames(self.cache, [self.data.feats.ids[i] for i in idx.tolist()]).to(
            self.device
        )
        f = self.data.feats
        tokens = self.tokenizer([self.data.texts[i] for i in cap.tolist()]).to(self.device)
        noise = torch.randn((*frames.shape[:2], self.clip_dim), generator=g).to(self.device)
        return [
            (frames, f.logmel[idx].to(self.device), f.has_audio[idx].to(self.device), tokens, noise)
        ]


def load_frames(cache: DecodeCache, ids: list[str]) -> torch.Tensor:
    decoded = [cache.get(v) for v in ids]
    missing = [v for v, d in zip(ids, decoded, strict=True) if d is None]
    if missing:
        raise UserError(
            f"decoded frames of {missing[:3]} are missing from {cache.dir}; delete the cache and rerun"
        )
    return torch.from_numpy(np.stack([d.frames for d in decoded]))


class EndToEnd(nn.Module):
    """CLIP's towers and the fusion model trained together (--no-freeze-encoders)."""

    def __init__(self, clip, fusion: FusionModel) -> None:
        super().__init__()
        self.clip, self.fusion = clip, fusion

    def image_features(self, frames: torch.Tensor) -> torch.Tensor:
        b, k = frames.shape[:2]
        x = frames.reshape(b * k, *frames.shape[2:]).float().div(255)
        x = (x - CLIP_MEAN.to(x.device)) / CLIP_STD.to(x.device)
        return F.normalize(self.clip.encode_image(x).float(), dim=-1).view(b, k, -1)

    def forward(self, frames, logmel, has_audio, tokens, frame_noise=None):
        text = F.normalize(self.clip.encode_text(tokens).float(), dim=-1)
        return self.fusion(self.image_features(frames), logmel, has_audio, text, frame_noise)


def make_loss(vv_weight: float):
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
    model: FusionModel, feats: VideoFeatures, rows: torch.Tensor, device, batch: int = 256
):
    model.eval()
    out = []
    for i in range(0, len(rows), batch):
        idx = rows[i : i + batch]
        out.append(
            model.encode_video(
                feats.frames[idx].to(device),
                feats.logmel[idx].to(device),
                feats.has_audio[idx].to(device),
            )
        )
    return torch.cat(out) if out else torch.zeros(0, model.cfg.embed_dim, device=device)


@torch.no_grad()
def evaluate_pairs(
    model,
    data: EncodedData,
    pairs: list[tuple[str, str]],
    categories: dict[str, int],
    clip,
    tokenizer,
    device,
) -> dict:
    """1k-A style: one caption per test video; t2v/v2t recall and video->video category P@10."""
    model.eval()
    vids = list(dict.fromkeys(v for v, _ in pairs if v in data.pos))
    if len(vids) < 2:
        return {}
    col = {v: i for i, v in enumerate(vids)}
    rows = torch.tensor([data.pos[v] for v in vids])
    video = embed_videos(model, data.feats, rows, device)
    kept = [(v, c) for v, c in pairs if v in col]
    text = model.encode_text(text_features(clip, tokenizer, [c for _, c in kept], device))
    out = text_video_metrics(text, video, torch.tensor([col[v] for v, _ in kept], device=device))
    if all(v in categories for v in vids):
        cats = torch.tensor([categories[v] for v in vids], device=device)
        out["v2v_category_p10"] = category_precision_at_k(video, cats, 10)
    out["test_videos"] = len(vids)
    return out


def build(cfg, device, resumed: dict | None):
    try:
        clip, tokenizer, size = load_clip(
            cfg.clip_model, cfg.clip_pretrained, cfg.clip_weights, cfg.pretrained
        )
    except UserError as exc:
        if cfg.audio_encoder == "resnet18" and cfg.pretrained and cfg.weights is None:
            raise UserError(  # offline users learn about both files at once
                f"{exc}; --audio-encoder resnet18 will also want ImageNet ResNet18 weights: "
                "--weights PATH to a downloaded resnet18-f37072fd.pth"
            ) from exc
        raise
    if resumed is not None and resumed.get("clip_state") is not None:
        clip.load_state_dict(resumed["clip_state"])
    clip = clip.to(device).eval()
    fcfg = (
        FusionConfig(**resumed["fusion_config"])
        if resumed
        else FusionConfig(
            clip_dim=clip_dim(clip),
            embed_dim=clip_dim(clip),
            fusion_dim=cfg.fusion_dim,
            fusion_layers=cfg.fusion_layers,
            num_frames=cfg.num_frames,
            temporal=cfg.temporal,
            modality_dropout=cfg.modality_dropout,
            audio_encoder=cfg.audio_encoder,
        )
    )
    model = FusionModel(fcfg)
    if resumed is None and fcfg.audio_encoder == "resnet18" and (cfg.pretrained or cfg.weights):
        model.audio.load_imagenet(cfg.weights)
    return clip, tokenizer, size, model


def train_multi(cfg: TrainConfig) -> tuple[Run, dict]:
    seed_everything(cfg.seed)
    device = select_device(cfg.device)
    resume_path = resolve_resume(cfg.resume, out=cfg.out, runs_root=runs_root(PROJECT))
    resumed = (
        load_checkpoint(resume_path, project=PROJECT, map_location="cpu") if resume_path else None
    )
    data = locate(
        cfg.videos,
        cfg.annotations,
        cfg.data_dir,
        download=cfg.download,
        quiet=cfg.quiet,
        train_split=cfg.train_split,
    )
    train_ids, test_pairs = standard_split(data, cfg.train_split, cfg.seed)
    if len(train_ids) < 2:
        raise UserError(
            f"only {len(train_ids)} captioned training videos were found next to the annotations"
        )
    info(
        f"videos on disk: {len(data.videos)}; train {len(train_ids)}, test pairs {len(test_pairs)}",
        cfg.quiet,
    )
    clip, tokenizer, size, model = build(cfg, device, resumed)
    wanted = {v: data.videos[v] for v in dict.fromkeys(train_ids + [v for v, _ in test_pairs])}
    params = DecodeParams(num_frames=cfg.num_frames, size=size)
    feats = load_video_features(
        wanted, params, clip, clip_identity(cfg, cfg.seed), device, cache_root(cfg), quiet=cfg.quiet
    )
    train_set = set(
        train_ids
    )  # only training captions are encoded for training; test captions at eval
    captions = {v: data.ann.captions.get(v, []) if v in train_set else [] for v in feats.ids}
    enc = EncodedData(feats, captions, clip, tokenizer, device)
    train_rows = torch.tensor(
        [
            enc.pos[v]
            for v in train_ids
            if v in enc.pos and enc.caption_start[enc.pos[v] + 1] > enc.caption_start[enc.pos[v]]
        ]
    )
    if len(train_rows) < 2:
        raise UserError("fewer than two decodable training videos with captions")
    batch = min(cfg.batch_size, len(train_rows))
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    decode_cache = DecodeCache(cache_root(cfg), params)
    if cfg.freeze_encoders:
        trained: nn.Module = model
        batches = ContrastiveBatches(enc, train_rows, batch, cfg.seed, device)
    else:
        trained = EndToEnd(clip, model)
        clip.requires_grad_(True)
        groups.append(
            {
                "params": list(clip.parameters()),
                "weight_decay": cfg.weight_decay,
                "lr": cfg.encoder_lr,
            }
        )
        batches = FrameBatches(
            enc, train_rows, batch, cfg.seed, device, decode_cache, tokenizer, clip_dim(clip)
        )
    total = cfg.epochs * batches.steps_per_epoch
    optimizer = adamw(groups, device, lr=cfg.lr)
    trainer = Trainer(
        trained,
        optimizer,
        warmup_cosine(optimizer, max(1, total // 20), total, 0.01),
        device=device,
        precision=cfg.precision,
        clip_grad=1.0,
        compile=cfg.compile,
    )
    run = Run(PROJECT, cfg.out, cfg, resume_from=resume_path)
    ckpt = CheckpointManager(run.checkpoints, project=PROJECT, mode="max")
    if resumed is not None:
        resume_run(trainer, resumed, ckpt, run, resume_path, cfg.quiet)

    test_ids = list(dict.fromkeys(v for v, _ in test_pairs if v in enc.pos))

    def eval_data():
        """Frozen: the cached features. Fine-tuned: test frames through the current image tower."""
        if cfg.freeze_encoders:
            return enc
        rows = torch.tensor([enc.pos[v] for v in test_ids], dtype=torch.long)
        with torch.no_grad():
            frames = (
                torch.cat(
                    [
                        trained.image_features(
                            load_frames(decode_cache, test_ids[i : i + 64]).to(device)
                        )
                        for i in range(0, len(test_ids), 64)
                    ]
                )
                .half()
                .cpu()
            )
        f = VideoFeatures(test_ids, frames, feats.logmel[rows], feats.has_audio[rows], [])
        return types.SimpleNamespace(feats=f, pos=f.index())

    def evaluate(tr: Trainer) -> dict:
        trained.eval()
        m = evaluate_pairs(
            model, eval_data(), test_pairs, data.ann.categories, clip, tokenizer, device
        )
        return {f"val_{k}": v for k, v in m.items() if k != "test_videos"}

    random_clip = clip.state_dict() if not cfg.pretrained and cfg.clip_weights is None else None
    extra = {
        "config": to_jsonable(cfg),
        "fusion_config": model.cfg.as_dict(),
        "end_to_end": not cfg.freeze_encoders,
        "clip_state": random_clip if cfg.freeze_encoders else None,  # fine-tuned: inside "model"
        "decode": {"num_frames": cfg.num_frames, "size": size},
    }
    plot = LivePlot(run.figure("loss.png"), every=2, title="multi-net contrastive training")
    result = fit(
        trainer,
        batches,
        make_loss(cfg.vv_weight),
        max_steps=total,
        run=run,
        evaluate=evaluate,
        eval_every=batches.steps_per_epoch,
        log_every=max(1, batches.steps_per_epoch // 4),
        checkpoints=ckpt,
        checkpoint_extra=lambda: extra,
        monitor="val_t2v_r1",
        plot=plot,
        max_minutes=cfg.max_minutes,
        quiet=cfg.quiet,
        steps_per_epoch=batches.steps_per_epoch,
    )
    if not is_main():
        return run, {}
    best = load_checkpoint(ckpt.best_path, project=PROJECT, map_location=device)
    trained.load_state_dict(best["model"])
    trained.eval()
    final = evaluate_pairs(
        model, eval_data(), test_pairs, data.ann.categories, clip, tokenizer, device
    )
    return run, {
        "device": str(device),
        "world_size": world_size(),
        "clip": clip_identity(cfg, cfg.seed),
        "encoders": "frozen" if cfg.freeze_encoders else "fine-tuned",
        "train_videos": len(train_rows),
        "skipped_videos": len(feats.skipped),
        "with_audio": int(feats.has_audio.sum()),
        "epochs": trainer.epoch,
        "train_seconds": result["train_seconds"],
        "best_epoch": int(best["epoch"]),
        **{f"test_{k}": v for k, v in final.items()},
        "checkpoint": str(ckpt.best_path),
    }
