"""``audio-net train``: GTZAN clips -> cached log-mel windows -> ResNet18 fine-tuning -> test report."""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F

from audio_net.augment import AugmentConfig, augment
from audio_net.config import DataOptions, TrainConfig
from audio_net.dataset import GENRES, find_gtzan, split_clips, split_from_files
from audio_net.evaluate import evaluate_windows, report
from audio_net.features import FeatureParams, Features, load_features
from audio_net.model import SpectrogramClassifier
from shared.checkpoint import CheckpointManager, load_checkpoint, resolve_resume
from shared.config import UserError, to_jsonable
from shared.device import make_generator, seed_everything, select_device
from shared.distributed import is_main, world_size
from shared.download import data_root
from shared.plots import LivePlot
from shared.progress import info
from shared.resnet import resnet18_one_channel
from shared.runs import Run, runs_root
from shared.schedules import warmup_cosine_factor
from shared.training import Trainer, adamw, fit, resume_run

PROJECT = "audio-net"


def feature_params(opts: DataOptions) -> FeatureParams:
    return FeatureParams(
        window_seconds=opts.window_seconds, hop_seconds=opts.hop_seconds, n_mels=opts.n_mels
    )


def cache_dir(opts: DataOptions):
    return opts.cache_dir if opts.cache_dir is not None else data_root(None) / "cache" / "audio-net"


def load_split_features(cfg, device) -> tuple[Features, dict[str, list[str]]]:
    clips = find_gtzan(cfg.data_dir, download=cfg.download, quiet=cfg.quiet)
    feats, cached = load_features(
        clips, feature_params(cfg), cache_dir(cfg), device, quiet=cfg.quiet
    )
    info(
        f"features: {len(feats.windows)} windows of {len(feats.names)} clips"
        f"{' (from the cache)' if cached else ''}",
        cfg.quiet,
    )
    usable = {n for n in feats.names}
    clips = [c for c in clips if c.name in usable]
    if getattr(cfg, "split_file", None):
        split = split_from_files(clips, cfg.split_file)
    else:
        split = split_clips(clips, cfg.seed, cfg.val_fraction, cfg.test_fraction)
    return feats, {k: [c.name for c in v] for k, v in split.items()}


class WindowBatches:
    """Step -> one augmented batch, sliced from the on-device training windows."""

    def __init__(self, x, y, batch_size: int, seed: int, aug: AugmentConfig | None, model) -> None:
        self.x, self.y, self.batch_size, self.seed, self.aug, self.model = (
            x,
            y,
            batch_size,
            seed,
            aug,
            model,
        )
        self.steps_per_epoch = max(1, len(y) // batch_size)
        self._epoch, self._perm = -1, None

    def __call__(self, step: int):
        epoch, i = divmod(step, self.steps_per_epoch)
        if epoch != self._epoch:
            self._perm = torch.randperm(len(self.y), generator=make_generator(self.seed, epoch)).to(
                self.x.device
            )
            self._epoch = epoch
        idx = self._perm[i * self.batch_size : (i + 1) * self.batch_size]
        x = self.model.normalise(self.x[idx])
        y = self.y[idx]
        if self.aug is None:
            return [(x, F.one_hot(y, len(GENRES)).float())]
        return [augment(x, y, self.aug, make_generator(self.seed, 10_000_000 + step), len(GENRES))]


def loss_fn(model, batch):
    x, target = batch
    logits = model(x)
    loss = F.cross_entropy(logits.float(), target)
    return loss, {"acc": (logits.argmax(1) == target.argmax(1)).float().mean()}


def train_audio(cfg: TrainConfig) -> tuple[Run, dict]:
    seed_everything(cfg.seed)
    device = select_device(cfg.device)
    resume_path = resolve_resume(cfg.resume, out=cfg.out, runs_root=runs_root(PROJECT))
    resumed = (
        load_checkpoint(resume_path, project=PROJECT, map_location=device) if resume_path else None
    )
    feats, split = load_split_features(cfg, device)
    if resumed is not None:
        split = resumed["split"]  # the run's own clips, whatever the data folder holds now
    overlap = set(split["train"]) & (set(split["val"]) | set(split["test"]))
    if overlap:
        raise UserError(f"clips in both training and evaluation splits: {sorted(overlap)[:5]}")
    xtr, ytr, _ = feats.select(set(split["train"]))
    if len(ytr) == 0:
        raise UserError("the training split has no windows")
    xtr, ytr = xtr.to(device), ytr.to(device)
    mean, std = float(xtr.float().mean()), float(xtr.float().std())
    val = [t.to(device) for t in feats.select(set(split["val"]))]
    info(
        f"split by clip: {len(split['train'])} train / {len(split['val'])} val / {len(split['test'])} test clips; "
        f"{len(ytr)} training windows on {device}",
        cfg.quiet,
    )

    model = SpectrogramClassifier(
        resnet18_one_channel(
            len(GENRES),
            cfg.pretrained and resumed is None,
            cfg.weights if resumed is None else None,
        ),
        mean,
        std,
    )
    batches = WindowBatches(xtr, ytr, cfg.batch_size, cfg.seed, None, model)
    if cfg.augment:
        batches.aug = AugmentConfig(
            cfg.freq_mask,
            cfg.time_mask,
            cfg.time_shift,
            cfg.gain_db,
            cfg.noise_std,
            cfg.mixup_alpha,
        )
    spe = batches.steps_per_epoch
    total, warmup, freeze = cfg.epochs * spe, int(cfg.warmup_epochs * spe), cfg.freeze_epochs * spe
    optimizer = adamw(
        [
            {"params": model.body_parameters(), "lr": cfg.lr * cfg.backbone_lr_ratio},
            {"params": model.head_parameters(), "lr": cfg.lr},
        ],
        device,
        weight_decay=cfg.weight_decay,
    )
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        [
            lambda s: (
                0.0
                if s < freeze
                else warmup_cosine_factor(s - freeze, warmup, total - freeze, 0.01)
            ),
            lambda s: warmup_cosine_factor(s, warmup, total, 0.01),
        ],
    )
    trainer = Trainer(
        model, optimizer, schedule, device=device, precision=cfg.precision, compile=cfg.compile
    )
    run = Run(PROJECT, cfg.out, cfg, resume_from=resume_path)
    ckpt = CheckpointManager(run.checkpoints, project=PROJECT, mode="min")
    if resumed is not None:
        resume_run(trainer, resumed, ckpt, run, resume_path, cfg.quiet)

    def set_frozen(step: int) -> None:
        frozen = step < freeze
        for p in model.body_parameters():
            p.requires_grad_(not frozen)

    def step_batches(step: int):
        set_frozen(step)
        return batches(step)

    def evaluate(tr: Trainer) -> dict[str, float]:
        with tr.autocast():
            m = evaluate_windows(tr.eval_forward, model.normalise, *val, batch_size=256)
        return {
            "val_loss": m["loss"],
            "val_acc": m["window_accuracy"],
            "val_clip_acc": m["clip_accuracy"],
        }

    extra = {
        "config": to_jsonable(cfg),
        "split": split,
        "genres": list(GENRES),
        "feature_params": dataclasses.asdict(feature_params(cfg)),
    }
    plot = LivePlot(run.figure("curves.png"), every=2, title="audio-net ResNet18 on GTZAN")
    result = fit(
        trainer,
        step_batches,
        loss_fn,
        max_steps=total,
        run=run,
        evaluate=evaluate,
        eval_every=spe,
        log_every=max(1, spe // 4),
        checkpoints=ckpt,
        checkpoint_extra=lambda: extra,
        plot=plot,
        max_minutes=cfg.max_minutes,
        quiet=cfg.quiet,
        steps_per_epoch=spe,
    )
    set_frozen(total)
    if not is_main():
        return run, {}
    best = load_checkpoint(ckpt.best_path, project=PROJECT, map_location=device)
    model.load_state_dict(best["model"])
    test = report(
        model, feats, split["test"], run, device, trainer.autocast, title="held-out test clips"
    )
    return run, {
        "device": str(device),
        "world_size": world_size(),
        "pretrained": bool(cfg.pretrained or cfg.weights),
        "clips": {k: len(v) for k, v in split.items()},
        "train_windows": len(ytr),
        "skipped_files": len(feats.skipped),
        "epochs": trainer.epoch,
        "train_seconds": result["train_seconds"],
        "best_epoch": int(best["epoch"]),
        "val_loss": round(result.get("val_loss", float("nan")), 4),
        "val_clip_accuracy": round(result.get("val_clip_acc", float("nan")), 4),
        **{f"test_{k}": v for k, v in test.items()},
        "checkpoint": str(ckpt.best_path),
    }
