"""``multi-net train``: contrastive video(+audio) <-> caption training.

The steps, each a function below: find the data and its splits (``load_data``); build CLIP and the
fusion model (``build_models``); encode the videos once (frame features and log-mels, cached) and
the training captions (``EncodedData``); choose what trains and how batches are drawn
(``model_groups_and_batches``); train with the shared loop, choosing ``best.pt`` by validation R@1; then score
the test pairs once, with ``best.pt`` (``train_multi``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch
from torch import nn

from multi_net.config import TrainConfig
from multi_net.dataset import MsrVtt, Splits, check_splits, coverage, locate, standard_split
from multi_net.encoders import clip_dim, load_clip, text_features
from multi_net.evaluate import evaluate_pairs
from multi_net.features import VideoFeatures, load_video_features
from multi_net.inference import (
    CHECKPOINT_KEYS,
    CLAP_RATE,
    PROJECT,
    EndToEnd,
    audio_input,
    cache_dir,
    clip_identity,
)
from multi_net.model import FusionConfig, FusionModel, info_nce
from multi_net.video import DecodeCache, DecodeParams
from shared.batching import EpochBatches
from shared.device import make_generator
from shared.distributed import gather_with_grad, world_size
from shared.errors import UserError
from shared.length import AutoLength
from shared.lifecycle import Outcome, Plan, TrainingTask, run_training
from shared.optim import adamw, decay_groups, warmup_cosine
from shared.plots import LivePlot
from shared.progress import info
from shared.runs import Run
from shared.training import Trainer

# step s's caption for each video is drawn from a generator seeded (seed, CAPTION_STREAM + s): a
# stream apart from the batch order's, both pure functions of the step (exact resume)
CAPTION_STREAM = 5_000_000

# --epochs auto: at least 10 epochs and 500 steps; --patience: 10 epochs or 100 steps
LENGTH = AutoLength(min_epochs=10, min_steps=500, patience_epochs=10, patience_steps=100)


def decode_params(cfg, size: int) -> DecodeParams:
    """How videos are decoded: CLAP listens at 48 kHz, the log-mel encoders at 16 kHz."""
    rate = CLAP_RATE if cfg.audio_encoder == "clap" else DecodeParams.audio_rate
    return DecodeParams(
        num_frames=cfg.num_frames, size=size, audio_seconds=cfg.audio_seconds, audio_rate=rate
    )


# --- data ------------------------------------------------------------------------------------


def load_data(cfg: TrainConfig) -> tuple[MsrVtt, Splits]:
    data = locate(
        cfg.videos,
        cfg.annotations,
        cfg.data_dir,
        download=cfg.download,
        quiet=cfg.quiet,
        train_split=cfg.train_split,
    )
    coverage(data, cfg.quiet)
    splits = standard_split(data, cfg.train_split, cfg.seed, cfg.val_videos)
    check_splits(splits)
    info(
        f"videos on disk: {len(data.videos)}; train {len(splits.train)}, validation pairs "
        f"{len(splits.val)}, test pairs {len(splits.test)}",
        cfg.quiet,
    )
    return data, splits


class EncodedData:
    """Cached frame features/log-mels of the videos, and CLIP text features of the TRAINING
    captions (validation and test captions are encoded only when they are scored)."""

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

    def rows_with_captions(self, ids: list[str]) -> torch.Tensor:
        rows = [self.pos[v] for v in ids if v in self.pos]
        return torch.tensor(
            [r for r in rows if self.caption_start[r + 1] > self.caption_start[r]],
            dtype=torch.long,
        )

    def videos(self, idx: torch.Tensor, device):
        f = self.feats
        return f.frames[idx].to(device), f.audio[idx].to(device), f.has_audio[idx].to(device)


# --- batches ---------------------------------------------------------------------------------


class ContrastiveBatches:
    """Step -> a batch of training videos, each with one caption drawn with a (seed, step) generator.

    The batch is GLOBAL (the same on every rank); under torchrun each rank keeps its share.
    """

    def __init__(self, data: EncodedData, rows: torch.Tensor, batch: int, seed: int, device):
        self.data, self.rows, self.seed, self.device = data, rows, seed, device
        self.order = EpochBatches(len(rows), batch, seed)
        self.steps_per_epoch = self.order.steps_per_epoch

    def select(self, step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Generator]:
        """(video rows, caption indices, the step's generator)."""
        idx = self.rows[self.order.indices(step)]
        g = make_generator(self.seed, CAPTION_STREAM + step)
        lo, hi = self.data.caption_start[idx], self.data.caption_start[idx + 1]
        return idx, lo + (torch.rand(len(idx), generator=g) * (hi - lo)).long(), g

    def __call__(self, step: int):
        idx, cap, g = self.select(step)
        frames, logmel, has_audio = self.data.videos(idx, self.device)
        view_noise = torch.randn(frames.shape, generator=g).to(self.device)
        return [(frames, logmel, has_audio, self.data.text_feats[cap].to(self.device), view_noise)]


class FrameBatches(ContrastiveBatches):
    """For --no-freeze-encoders: decoded frames (from the decode cache) and caption tokens.

    The training videos' frames are read into memory once when they fit in ``memory_bytes``
    (a small data set), else from the decode cache at every step.
    """

    def __init__(
        self,
        data,
        rows,
        batch,
        seed,
        device,
        cache: DecodeCache,
        tokenizer,
        dim: int,
        memory_bytes: int = 2 << 30,
    ):
        super().__init__(data, rows, batch, seed, device)
        self.cache, self.tokenizer, self.dim = cache, tokenizer, dim
        p = cache.p
        size = len(rows) * p.num_frames * 3 * p.size * p.size
        self.frames: dict[int, int] | None = None
        if size <= memory_bytes:
            ids = [data.feats.ids[i] for i in rows.tolist()]
            self.memory = load_frames(cache, ids)
            self.frames = {int(r): i for i, r in enumerate(rows.tolist())}

    def __call__(self, step: int):
        idx, cap, g = self.select(step)
        if self.frames is not None:
            frames = self.memory[[self.frames[int(i)] for i in idx]].to(self.device)
        else:
            ids = [self.data.feats.ids[i] for i in idx.tolist()]
            frames = load_frames(self.cache, ids).to(self.device)
        f = self.data.feats
        tokens = self.tokenizer([self.data.texts[i] for i in cap.tolist()]).to(self.device)
        noise = torch.randn((*frames.shape[:2], self.dim), generator=g).to(self.device)
        return [
            (frames, f.audio[idx].to(self.device), f.has_audio[idx].to(self.device), tokens, noise)
        ]


def load_frames(cache: DecodeCache, ids: list[str]) -> torch.Tensor:
    decoded = [cache.get(v) for v in ids]
    missing = [v for v, d in zip(ids, decoded, strict=True) if d is None]
    if missing:
        raise UserError(
            f"decoded frames of {missing[:3]} are missing from {cache.dir}; delete the cache and rerun"
        )
    return torch.from_numpy(np.stack([d.frames for d in decoded]))


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


# --- models ----------------------------------------------------------------------------------


def build_models(cfg: TrainConfig, device, resumed: dict | None, audio_dim: int = 0):
    """(CLIP, its tokenizer, its image size, the fusion model), the fusion model from the
    checkpoint's config when resuming; ``audio_dim``: the width of CLAP's embedding."""
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
            motion=cfg.motion,
            modality_dropout=cfg.modality_dropout,
            audio_encoder=cfg.audio_encoder,
            audio_width=cfg.audio_width,
            **({"audio_dim": audio_dim} if cfg.audio_encoder == "clap" else {}),
        )
    )
    model = FusionModel(fcfg)
    if resumed is None and fcfg.audio_encoder == "resnet18" and (cfg.pretrained or cfg.weights):
        model.audio.load_imagenet(cfg.weights)
    return clip, tokenizer, size, model


def model_groups_and_batches(
    cfg: TrainConfig, model, clip, tokenizer, enc, rows, cache: DecodeCache, device
):
    """What the optimizer trains, its parameter groups, and the batches that feed it: the fusion
    model on cached features (frozen towers), or CLIP's towers too, on decoded frames."""
    batch = min(cfg.batch_size, len(rows))
    groups = decay_groups(model.named_parameters(), cfg.weight_decay)
    if cfg.freeze_encoders:
        return model, groups, ContrastiveBatches(enc, rows, batch, cfg.seed, device)
    clip.requires_grad_(True)
    groups += decay_groups(clip.named_parameters(), cfg.weight_decay, lr=cfg.encoder_lr)
    batches = FrameBatches(enc, rows, batch, cfg.seed, device, cache, tokenizer, clip_dim(clip))
    return EndToEnd(clip, model), groups, batches


def current_features(
    cfg, trained: nn.Module, feats: VideoFeatures, ids, cache: DecodeCache, device
):
    """Features of ``ids`` as the model sees them now: the cached ones with frozen towers, else
    their decoded frames through the current (fine-tuned) image tower."""
    if cfg.freeze_encoders:
        return feats
    pos = feats.index()
    ids = [v for v in dict.fromkeys(ids) if v in pos]
    rows = torch.tensor([pos[v] for v in ids], dtype=torch.long)
    with torch.no_grad():
        frames = [
            trained.image_features(load_frames(cache, ids[i : i + 64]).to(device)).half().cpu()
            for i in range(0, len(ids), 64)
        ]
    frames = torch.cat(frames) if frames else feats.frames[:0]
    return VideoFeatures(ids, frames, feats.audio[rows], feats.has_audio[rows], [])


# --- the run ---------------------------------------------------------------------------------


MODEL_SETTINGS = (
    "preset",
    "clip_model",
    "num_frames",
    "temporal",
    "motion",
    "fusion_dim",
    "fusion_layers",
    "audio_width",
    "audio_encoder",
    "audio_source",
    "freeze_encoders",
)


@dataclasses.dataclass
class Prepared:
    """What ``plan`` found and built: the data and its splits, CLIP, the fusion model and what
    trains (the fusion model alone with frozen towers, else the towers too), the videos' cached
    features and the training rows. ``summary`` scores the chosen model with it."""

    data: MsrVtt
    splits: Splits
    clip: nn.Module
    tokenizer: Any
    size: int  # CLIP's image size
    fusion: FusionModel
    trained: nn.Module
    feats: VideoFeatures
    rows: list[int]  # the training videos with captions
    decode_cache: DecodeCache
    planned_epochs: int = 0


def prepare(cfg: TrainConfig, device, resumed) -> tuple[Prepared, list, Any]:
    """The splits, CLIP and the fusion model, the videos' cached features, the training captions
    encoded; with the optimizer's parameter groups and the batches that feed it."""
    data, splits = load_data(cfg)
    audio = audio_input(cfg.audio_encoder, cfg.audio_source, DecodeParams.audio_rate, cfg.quiet)
    clip, tokenizer, size, fusion = build_models(
        cfg, device, resumed, getattr(audio.module, "dim", 0)
    )
    params = decode_params(cfg, size)
    wanted = splits.train + [v for v, _ in splits.val + splits.test]
    feats = load_video_features(
        {v: data.videos[v] for v in dict.fromkeys(wanted)},
        params,
        clip,
        clip_identity(cfg, cfg.seed),
        device,
        cache_dir(cfg),
        audio=audio,
        quiet=cfg.quiet,
    )
    train_set = set(splits.train)  # only training captions are encoded for training
    captions = {v: data.ann.captions.get(v, []) for v in feats.ids if v in train_set}
    enc = EncodedData(feats, captions, clip, tokenizer, device)
    rows = enc.rows_with_captions(splits.train)
    if len(rows) < 2:
        raise UserError("fewer than two decodable training videos with captions")
    decode_cache = DecodeCache(cache_dir(cfg), params)
    trained, groups, batches = model_groups_and_batches(
        cfg, fusion, clip, tokenizer, enc, rows, decode_cache, device
    )
    got = Prepared(data, splits, clip, tokenizer, size, fusion, trained, feats, rows, decode_cache)
    return got, groups, batches


def score(cfg: TrainConfig, got: Prepared, pairs, device) -> dict:
    """Retrieval metrics of the model as it is now on ``pairs`` (video id, caption)."""
    got.trained.eval()
    ids = [v for v, _ in pairs]
    f = current_features(cfg, got.trained, got.feats, ids, got.decode_cache, device)
    ann = got.data.ann
    return evaluate_pairs(
        got.fusion,
        f,
        pairs,
        got.clip,
        got.tokenizer,
        device,
        categories=ann.categories,
        attributes=ann.attributes,
    )


class MultiTask(TrainingTask):
    """Contrastive training of the fusion model (and CLIP's towers when they are fine-tuned);
    ``best.pt`` chosen by validation R@1, the test pairs scored once with it."""

    project = PROJECT
    checkpoint_keys = CHECKPOINT_KEYS
    settings_fixed_on_resume = MODEL_SETTINGS

    def plan(self, cfg: TrainConfig, device, resumed, resume_path) -> Plan:
        got, groups, batches = prepare(cfg, device, resumed)
        has_val = len({v for v, _ in got.splits.val}) >= 2
        got.planned_epochs, cadence = LENGTH.cadence(
            cfg.epochs,
            cfg.patience,
            batches.steps_per_epoch,
            validates=has_val,
            max_minutes=cfg.max_minutes,
            quiet=cfg.quiet,
        )
        total = cadence.max_steps
        optimizer = adamw(groups, device, lr=cfg.lr)

        def evaluate(tr: Trainer) -> dict:  # validation pairs only: they choose best.pt
            metrics = score(cfg, got, got.splits.val, device)
            return {f"val_{k}": v for k, v in metrics.items() if k != "videos"}

        random_clip = cfg.freeze_encoders and not cfg.pretrained and cfg.clip_weights is None
        return Plan(
            model=got.trained,
            optimizer=optimizer,
            scheduler=warmup_cosine(optimizer, max(1, total // 20), total, 0.01),
            batch_for_step=batches,
            loss_fn=make_loss(cfg.vv_weight),
            cadence=cadence,
            evaluate=evaluate if has_val else None,
            extra_state={
                "fusion_config": got.fusion.cfg.as_dict(),
                "end_to_end": not cfg.freeze_encoders,
                # fine-tuned towers are inside "model"; random frozen ones are kept here
                "clip_state": got.clip.state_dict() if random_clip else None,
                "decode": {
                    "num_frames": cfg.num_frames,
                    "size": got.size,
                    "audio_seconds": cfg.audio_seconds,
                    "audio_rate": decode_params(cfg, got.size).audio_rate,
                },
            },
            plot=LivePlot(
                "loss.png",
                title="multi-net contrastive training",
                metrics=("loss", "t2v_r1", "t2v_r5", "t2v_r1_no_audio", "v2v_category_p10"),
            ),
            clip_grad=1.0,
            monitor="val_t2v_r1",
            mode="max",
            prepared=got,
        )

    def summary(self, cfg: TrainConfig, outcome: Outcome, got: Prepared) -> dict:
        val = score(cfg, got, got.splits.val, outcome.device)  # the chosen model's validation
        test = score(cfg, got, got.splits.test, outcome.device)  # the one look at the test pairs
        return {
            "device": str(outcome.device),
            "world_size": world_size(),
            "clip": clip_identity(cfg, cfg.seed),
            "encoders": "frozen" if cfg.freeze_encoders else "fine-tuned",
            "preset": cfg.preset,
            "train_videos": len(got.rows),
            "val_videos": len({v for v, _ in got.splits.val}),
            "skipped_videos": len(got.feats.skipped),
            "with_audio": int(got.feats.has_audio.sum()),
            "epochs": outcome.trainer.epoch,
            "planned_epochs": got.planned_epochs,
            "stop_reason": outcome.result["stop_reason"],
            "train_seconds": outcome.result["train_seconds"],
            "best_epoch": outcome.chosen_epoch,
            **{f"val_{k}": v for k, v in val.items()},
            **{f"test_{k}": v for k, v in test.items()},
            "checkpoint": str(outcome.checkpoint),
        }


def train_multi(cfg: TrainConfig) -> tuple[Run, dict]:
    """``multi-net train``."""
    return run_training(MultiTask(), cfg)
