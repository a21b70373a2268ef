"""``multi-net train``: contrastive video(+audio) <-> caption training.

``train`` reads top to bottom as a run happens: the device; the videos, their captions and splits
(``load_data``); CLIP, the audio encoder and the fusion model (``build_models``); the videos
encoded once (frame features and log-mels, cached) and the training captions (``EncodedData``);
what trains and how batches are drawn (``model_groups_and_batches``); AdamW; the run folder;
shared's loop (``fit``, ``best.pt`` chosen by validation R@1); then the test pairs scored once,
with ``best.pt``. Everything that can refuse the command happens before the run folder exists.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import numpy as np
import torch
from torch import nn

from multi_net.config import TrainConfig
from multi_net.dataset import MsrVtt, Splits, check_splits, coverage, locate, standard_split
from multi_net.encoders import clip_dim, load_clip, text_features
from multi_net.features import VideoFeatures, audio_input, clip_identity, load_video_features
from multi_net.inference import CHECKPOINT_KEYS, CLAP_RATE, PROJECT, EndToEnd
from multi_net.model import FusionConfig, FusionModel, decay_groups, evaluate_pairs, make_loss
from multi_net.video import DecodeCache, DecodeParams
from shared.checkpoint import read_resume
from shared.device import is_main, seeded_device, world_size
from shared.errors import UserError
from shared.runs import Run
from shared.training import AutoLength, EpochBatches, Plot, WarmupCosine, fit

log = logging.getLogger(__name__)

# step s's caption for each video is drawn from a generator seeded (seed, CAPTION_STREAM + s): a
# stream apart from the batch order's, both pure functions of the step (exact resume)
CAPTION_STREAM = 5_000_000

# --epochs auto: at least 10 epochs and 500 steps; --patience: 10 epochs or 100 steps
LENGTH = AutoLength(min_epochs=10, min_steps=500, patience_epochs=10, patience_steps=100)


def decode_settings(cfg, size: int) -> DecodeParams:
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
    log.info(
        f"videos on disk: {len(data.videos)}; train {len(splits.train)}, validation pairs "
        f"{len(splits.val)}, test pairs {len(splits.test)}"
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


def with_captions(data: EncodedData, idx: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """One caption of each video ``idx``, drawn with the step's generator ``g``."""
    lo, hi = data.caption_start[idx], data.caption_start[idx + 1]
    return lo + (torch.rand(len(idx), generator=g) * (hi - lo)).long()


def contrastive_batches(
    data: EncodedData, rows: torch.Tensor, batch: int, seed: int, device
) -> EpochBatches:
    """The batches of each step: training videos in a seeded epoch order, each with one caption
    and its view noise drawn with the step's generator. A batch is GLOBAL (the same on every
    rank); under torchrun each rank keeps its share."""

    def make(pick: torch.Tensor, g: torch.Generator):
        idx = rows[pick]
        cap = with_captions(data, idx, g)
        frames, logmel, has_audio = data.videos(idx, device)
        view_noise = torch.randn(frames.shape, generator=g).to(device)
        return frames, logmel, has_audio, data.text_feats[cap].to(device), view_noise

    return EpochBatches(len(rows), batch, seed, None, make, stream=CAPTION_STREAM)


def frame_batches(
    data: EncodedData,
    rows: torch.Tensor,
    batch: int,
    seed: int,
    device,
    cache: DecodeCache,
    tokenizer,
    dim: int,
    memory_bytes: int = 2 << 30,
) -> EpochBatches:
    """For --no-freeze-encoders: decoded frames (from the decode cache) and caption tokens. The
    training videos' frames are read into memory once when they fit in ``memory_bytes`` (a
    small data set), else from the decode cache at every step."""
    p, ids = cache.p, data.feats.ids
    in_memory = len(rows) * p.num_frames * 3 * p.size * p.size <= memory_bytes
    memory = load_frames(cache, [ids[i] for i in rows.tolist()]) if in_memory else None
    place = {int(r): i for i, r in enumerate(rows.tolist())}

    def make(pick: torch.Tensor, g: torch.Generator):
        idx = rows[pick]
        cap = with_captions(data, idx, g)
        if memory is not None:
            frames = memory[[place[int(i)] for i in idx]].to(device)
        else:
            frames = load_frames(cache, [ids[i] for i in idx.tolist()]).to(device)
        f = data.feats
        tokens = tokenizer([data.texts[i] for i in cap.tolist()]).to(device)
        noise = torch.randn((*frames.shape[:2], dim), generator=g).to(device)
        return frames, f.audio[idx].to(device), f.has_audio[idx].to(device), tokens, noise

    return EpochBatches(len(rows), batch, seed, None, make, stream=CAPTION_STREAM)


def load_frames(cache: DecodeCache, ids: list[str]) -> torch.Tensor:
    decoded = [cache.get(v) for v in ids]
    missing = [v for v, d in zip(ids, decoded, strict=True) if d is None]
    if missing:
        raise UserError(
            f"decoded frames of {missing[:3]} are missing from {cache.dir}; delete the cache and rerun"
        )
    return torch.from_numpy(np.stack([d.frames for d in decoded]))


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
        return model, groups, contrastive_batches(enc, rows, batch, cfg.seed, device)
    clip.requires_grad_(True)
    groups += decay_groups(clip.named_parameters(), cfg.weight_decay, lr=cfg.encoder_lr)
    batches = frame_batches(enc, rows, batch, cfg.seed, device, cache, tokenizer, clip_dim(clip))
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
class Scoring:
    """What scoring a model on (video, caption) pairs needs beside the pairs: the data (its
    categories and attributes), CLIP and its tokenizer, the fusion model and what trains, the
    videos' cached features and the decode cache (frames, when CLIP's towers are fine-tuned)."""

    data: MsrVtt
    clip: nn.Module
    tokenizer: Any
    fusion: FusionModel
    trained: nn.Module
    feats: VideoFeatures
    decode_cache: DecodeCache


def train(cfg: TrainConfig) -> dict:
    """``multi-net train``: returns the run's summary."""
    device = seeded_device(cfg.device, cfg.seed)
    resumed = read_resume(cfg, PROJECT, CHECKPOINT_KEYS, MODEL_SETTINGS) if cfg.resume else None
    state = resumed.state if resumed is not None else None

    # the videos, CLIP and the fusion model
    data, splits = load_data(cfg)
    audio = audio_input(cfg.audio_encoder, cfg.audio_source, DecodeParams.audio_rate, cfg.quiet)
    clip, tokenizer, size, fusion = build_models(
        cfg, device, state, getattr(audio.module, "dim", 0)
    )

    # the videos' features (decoded and encoded once, cached) and the training captions
    params = decode_settings(cfg, size)
    feats = load_video_features(
        {
            v: data.videos[v]
            for v in dict.fromkeys(splits.train + [v for v, _ in splits.val + splits.test])
        },
        params,
        clip,
        clip_identity(cfg, cfg.seed),
        device,
        cfg.cache_dir,
        audio=audio,
        quiet=cfg.quiet,
    )
    enc, rows = training_captions(data, splits, feats, clip, tokenizer, device)
    decode_cache = DecodeCache(cfg.cache_dir, params)

    # what trains (the fusion model, or CLIP's towers too), its batches, its optimizer
    trained, groups, batches = model_groups_and_batches(
        cfg, fusion, clip, tokenizer, enc, rows, decode_cache, device
    )
    scoring = Scoring(data, clip, tokenizer, fusion, trained, feats, decode_cache)
    has_val = len({v for v, _ in splits.val}) >= 2
    planned, cadence = LENGTH.cadence(
        cfg.epochs,
        cfg.patience,
        batches,
        validates=has_val,
        max_minutes=cfg.max_minutes,
    )
    fused = device.type in ("cuda", "cpu")  # one kernel for every parameter where PyTorch has it
    optimizer = torch.optim.AdamW(groups, lr=cfg.lr, fused=fused)

    # the run folder, and shared's loop
    run = Run(PROJECT, cfg.out, cfg, resume_from=resumed.path if resumed else None)
    random_clip = cfg.freeze_encoders and not cfg.pretrained and cfg.clip_weights is None
    fitted = fit(
        trained,
        optimizer,
        batches,
        make_loss(cfg.vv_weight),
        cadence,
        run=run,
        device=device,
        schedule=WarmupCosine(max(1, cadence.max_steps // 20), cadence.max_steps, 0.01),
        # validation pairs only: they choose best.pt
        evaluate=(lambda m: prefixed("val", score(cfg, scoring, splits.val, device)))
        if has_val
        else None,
        monitor="val_t2v_r1",
        mode="max",
        precision=cfg.precision,
        compile=cfg.compile,
        clip_grad=1.0,
        resumed=resumed,
        extra_state={
            "fusion_config": fusion.cfg.as_dict(),
            "end_to_end": not cfg.freeze_encoders,
            # fine-tuned towers are inside "model"; random frozen ones are kept here
            "clip_state": clip.state_dict() if random_clip else None,
            "decode": {
                "num_frames": cfg.num_frames,
                "size": size,
                "audio_seconds": cfg.audio_seconds,
                "audio_rate": params.audio_rate,
            },
        },
        plot=Plot(
            "loss.png",
            "multi-net contrastive training",
            ("loss", "t2v_r1", "t2v_r5", "t2v_r1_no_audio", "v2v_category_p10"),
        ),
        quiet=cfg.quiet,
    )
    if not is_main():
        return {}

    return run.finish(summary(cfg, fitted, scoring, splits, rows, planned, device))


def summary(cfg: TrainConfig, fitted, scoring: Scoring, splits: Splits, rows, planned, device):
    """The chosen model on the validation pairs, and the one look at the test pairs."""
    feats = scoring.feats
    val = score(cfg, scoring, splits.val, device)
    test = score(cfg, scoring, splits.test, device)
    return {
        "device": str(device),
        "world_size": world_size(),
        "clip": clip_identity(cfg, cfg.seed),
        "encoders": "frozen" if cfg.freeze_encoders else "fine-tuned",
        "preset": cfg.preset,
        "train_videos": len(rows),
        "val_videos": len({v for v, _ in splits.val}),
        "skipped_videos": len(feats.skipped),
        "with_audio": int(feats.has_audio.sum()),
        "epochs": fitted.trainer.epoch,
        "planned_epochs": planned,
        "stop_reason": fitted.result["stop_reason"],
        "train_seconds": fitted.result["train_seconds"],
        "best_epoch": fitted.epoch,
        **prefixed("val", val),
        **prefixed("test", test),
        "checkpoint": str(fitted.checkpoint),
    }


def training_captions(data: MsrVtt, splits: Splits, feats, clip, tokenizer, device):
    """The training videos' captions encoded by CLIP's text tower (validation and test captions
    are encoded only when they are scored), and the training rows that have captions."""
    train_set = set(splits.train)
    captions = {v: data.ann.captions.get(v, []) for v in feats.ids if v in train_set}
    enc = EncodedData(feats, captions, clip, tokenizer, device)
    rows = enc.rows_with_captions(splits.train)
    if len(rows) < 2:
        raise UserError("fewer than two decodable training videos with captions")
    return enc, rows


def prefixed(prefix: str, metrics: dict) -> dict:
    """``metrics`` named ``<prefix>_<name>`` (``videos``, a count, only in a summary)."""
    return {f"{prefix}_{k}": v for k, v in metrics.items()}


def score(cfg: TrainConfig, s: Scoring, pairs, device) -> dict:
    """Retrieval metrics of the model as it is now on ``pairs`` (video id, caption)."""
    s.trained.eval()
    ids = [v for v, _ in pairs]
    f = current_features(cfg, s.trained, s.feats, ids, s.decode_cache, device)
    return evaluate_pairs(
        s.fusion,
        f,
        pairs,
        s.clip,
        s.tokenizer,
        device,
        categories=s.data.ann.categories,
        attributes=s.data.ann.attributes,
    )
