"""``audio-net bench``: batched featurization throughput and end-to-end training windows/s."""

from __future__ import annotations

import time

import torch

from audio_net.ast_backbone import ast_config, base_features
from audio_net.augment import AugmentConfig
from audio_net.config import BenchConfig, feature_params
from audio_net.dataset import find_gtzan, labels_of
from audio_net.features import compute_features
from audio_net.model import SpectrogramClassifier, build_backbone, window_logits
from audio_net.train import loss_fn, window_batches
from shared.device import compiles, device_name, seed_everything, select_device
from shared.optim import adamw
from shared.runs import Run
from shared.training import Trainer


def sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed_featurize(cfg: BenchConfig, device):
    """(the bench's features, their parameters, the labels, seconds to featurize the clips)."""
    clips = find_gtzan(cfg.data_dir, download=cfg.download, quiet=True)
    labels = labels_of(clips)
    clips = (clips * (cfg.clips // len(clips) + 1))[: cfg.clips]
    p = feature_params(cfg) if cfg.model != "ast" else base_features(cfg.hop_seconds)
    compute_features(clips[:4], p, device, quiet=True)  # warm-up
    sync(device)
    t0 = time.perf_counter()
    feats = compute_features(clips, p, device, quiet=True)
    sync(device)
    return feats, p, labels, time.perf_counter() - t0


def timed_training(cfg: BenchConfig, model, x, y, classes: int, device) -> tuple[int, float, float]:
    """(steps timed, seconds for them, seconds to predict 2 batches), after warm-up steps."""
    trainer = Trainer(
        model,
        adamw(model.parameters(), device, lr=1e-4),
        device=device,
        precision=cfg.precision,
        compile=compiles(cfg.compile, device),
    )
    batches = window_batches(x, y, cfg.batch_size, cfg.seed, AugmentConfig(), model, classes)
    steps = cfg.train_steps or (30 if device.type == "cuda" else 3)
    for s in range(3 if device.type == "cuda" else 1):  # warm-up, compilation
        trainer.train_step(batches(s), loss_fn)
    sync(device)
    t0 = time.perf_counter()
    for s in range(steps):
        trainer.train_step(batches(s), loss_fn)
    sync(device)
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    with trainer.autocast():
        window_logits(model, model.normalise, x[: 2 * cfg.batch_size])
    sync(device)
    return steps, train_s, time.perf_counter() - t0


def run_bench(cfg: BenchConfig) -> int:
    """``audio-net bench``: featurizing, training and predicting speed of one backbone."""
    seed_everything(cfg.seed)
    device = select_device(cfg.device)
    run = Run("audio-net", cfg.out, cfg)
    feats, p, labels, featurize_s = timed_featurize(cfg, device)
    classes = len(labels)
    x = feats.windows.to(device)
    cfg.batch_size = cfg.batch_size or (12 if cfg.model == "ast" else 128)
    x = x.repeat(max(1, (cfg.batch_size * 4) // len(x) + 1), 1, 1)
    y = torch.randint(0, classes, (len(x),), device=device)
    config = ast_config({}, labels, "bench") if cfg.model == "ast" else None  # AST-Base's shape
    model = SpectrogramClassifier(
        build_backbone(cfg.model, classes, ast_config=config),
        float(x.float().mean()),
        float(x.float().std()),
    )
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    steps, train_s, predict_s = timed_training(cfg, model, x, y, classes, device)
    run.finish(
        {
            "device": device_name(device),
            "clips": len(feats.names),
            "windows": len(feats.windows),
            "featurize_clips_per_s": round(len(feats.names) / featurize_s, 1),
            "featurize_windows_per_s": round(len(feats.windows) / featurize_s, 1),
            "model": cfg.model,
            "parameters_m": round(sum(q.numel() for q in model.parameters()) / 1e6, 2),
            "batch_size": cfg.batch_size,
            "precision": cfg.precision,
            "compile": compiles(cfg.compile, device),
            "train_steps_timed": steps,
            "train_windows_per_s": round(steps * cfg.batch_size / train_s, 1),
            "predict_windows_per_s": round(min(len(x), 2 * cfg.batch_size) / predict_s, 1),
            "window_seconds": p.window_seconds,
        }
    )
    return 0
