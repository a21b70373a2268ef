"""``audio-net train``: GTZAN clips -> cached log-mel windows -> a network, beside a baseline.

One split (train / val / test by clip) or, for small sets, ``--cv K``: K stratified folds by clip,
one network and one baseline per fold scored on the same held-out clips, then a final network on
every clip for ``predict``. ``best.pt`` is chosen on validation clips only; test clips (or a fold's
held-out clips) are scored once, at the end.
"""

from __future__ import annotations

import dataclasses
import statistics
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from audio_net.augment import AugmentConfig, augment
from audio_net.baseline import baseline_report
from audio_net.config import DataOptions, TrainConfig
from audio_net.dataset import (
    Clip,
    check_split,
    cv_folds,
    find_gtzan,
    is_label_root,
    split_clips,
    split_from_files,
)
from audio_net.evaluate import evaluate_windows, report
from audio_net.features import FeatureParams, Features, load_features
from audio_net.model import SpectrogramClassifier, build_backbone
from shared.batching import EpochBatches
from shared.checkpoint import (
    CheckpointManager,
    check_resume_settings,
    load_checkpoint,
    resolve_resume,
)
from shared.config import to_jsonable
from shared.device import make_generator, seed_everything, select_device
from shared.distributed import is_main, world_size
from shared.errors import UserError
from shared.paths import cache_root, runs_root
from shared.plots import LivePlot
from shared.progress import info
from shared.runs import Run
from shared.schedules import warmup_cosine_factor
from shared.training import Cadence, Callback, Trainer, adamw, fit, resume_run

PROJECT = "audio-net"
CHECKPOINT_KEYS = ("model", "genres", "feature_params", "split", "config", "backbone")


def feature_params(opts: DataOptions) -> FeatureParams:
    # a clip must fill a third of a window (1 s for music's 3 s windows, 1/3 s for 1 s words);
    # a shorter one is padded with silence
    return FeatureParams(
        window_seconds=opts.window_seconds,
        hop_seconds=opts.hop_seconds,
        n_mels=opts.n_mels,
        min_seconds=min(1.0, opts.window_seconds / 3),
    )


def cache_dir(opts: DataOptions):
    """``--cache-dir``, else ``<data root>/cache/audio-net``; when ``--data-dir`` is itself a
    folder of label folders (your own sounds), the default data root's: a cache folder inside it
    would be read as one more label, and nothing is written into the data a user points at."""
    if opts.cache_dir is None and opts.data_dir is not None and is_label_root(opts.data_dir):
        return cache_root(PROJECT, None, None)
    return cache_root(PROJECT, opts.cache_dir, opts.data_dir)


def load_clip_features(cfg, device) -> tuple[list[Clip], Features]:
    """The data set's clips that could be decoded, and their (cached) log-mel windows."""
    clips = find_gtzan(cfg.data_dir, download=cfg.download, quiet=cfg.quiet)
    feats, cached = load_features(
        clips, feature_params(cfg), cache_dir(cfg), device, quiet=cfg.quiet
    )
    info(
        f"features: {len(feats.windows)} windows of {len(feats.names)} clips"
        f"{' (from the cache)' if cached else ''}",
        cfg.quiet,
    )
    usable = set(feats.names)
    return [c for c in clips if c.name in usable], feats


def make_split(cfg: TrainConfig, clips: list[Clip]) -> dict[str, list[str]]:
    split = (
        split_from_files(clips, cfg.split_file)
        if cfg.split_file
        else split_clips(clips, cfg.seed, cfg.val_fraction, cfg.test_fraction)
    )
    check_split(split)
    return {k: [c.name for c in v] for k, v in split.items()}


class WindowBatches:
    """Step -> one augmented batch, sliced from the on-device training windows."""

    def __init__(
        self, x, y, batch_size: int, seed: int, aug: AugmentConfig | None, model, classes: int
    ) -> None:
        self.x, self.y, self.seed, self.aug, self.model = x, y, seed, aug, model
        self.classes = classes
        self.order = EpochBatches(len(y), batch_size, seed, x.device)
        self.steps_per_epoch = self.order.steps_per_epoch

    def __call__(self, step: int):
        idx = self.order.indices(step)
        x = self.model.normalise(self.x[idx])
        y = self.y[idx]
        if self.aug is None:
            return [(x, F.one_hot(y, self.classes).float())]
        return [augment(x, y, self.aug, make_generator(self.seed, 10_000_000 + step), self.classes)]


class FreezeBody(Callback):
    """Only the head trains for the first ``until`` steps: the body's parameters stop requiring
    gradients (no backward through them, no optimizer state), and the training wrapper is rebuilt
    at each switch, which DistributedDataParallel needs to reduce the right set of gradients."""

    def __init__(self, model: SpectrogramClassifier, until: int) -> None:
        self.model, self.until, self.frozen = model, until, None

    def on_step_start(self, trainer: Trainer) -> None:
        frozen = trainer.step < self.until
        if frozen != self.frozen:
            for p in self.model.body_parameters():
                p.requires_grad_(not frozen)
            self.frozen = frozen
            trainer.rewrap()


def loss_fn(model, batch):
    x, target = batch
    logits = model(x)
    loss = F.cross_entropy(logits.float(), target)
    return loss, {"acc": (logits.argmax(1) == target.argmax(1)).float().mean()}


def augment_config(cfg: TrainConfig) -> AugmentConfig | None:
    if not cfg.augment:
        return None
    return AugmentConfig(
        cfg.freq_mask,
        cfg.time_mask,
        cfg.time_shift,
        cfg.gain_db,
        cfg.noise_std,
        cfg.mixup_alpha,
        cfg.pitch_shift,
        cfg.time_stretch,
    )


@dataclass
class Trained:
    model: SpectrogramClassifier
    trainer: Trainer
    result: dict
    checkpoint: str
    chosen_epoch: int


def initial_backbone(cfg: TrainConfig, classes: int, fresh: bool = True) -> torch.nn.Module:
    """The backbone a run starts from: ImageNet weights (a fresh resnet18 run) or random ones.
    Built before the run folder exists, so that missing weights offline leave no folder behind."""
    return build_backbone(
        cfg.model,
        classes,
        cfg.pretrained and fresh and cfg.model == "resnet18",
        cfg.weights if fresh else None,
    )


def train_network(
    cfg: TrainConfig,
    feats: Features,
    split: dict[str, list[str]],
    run: Run,
    device,
    *,
    epochs: int,
    keep: str = "best",
    resumed: dict | None = None,
    resume_path=None,
    title: str = "audio-net",
    backbone: torch.nn.Module | None = None,
) -> Trained:
    """Train one network on ``split["train"]``, evaluating on ``split["val"]`` every epoch (if any).

    ``keep="best"``: the model of the epoch with the lowest validation loss (``best.pt``);
    ``keep="last"``: the model at the end of the schedule (cross-validation, where the evaluated
    clips are the scored ones and must not choose anything).
    """
    xtr, ytr, _ = feats.select(set(split["train"]))
    xtr, ytr = xtr.to(device), ytr.to(device)
    mean, std = float(xtr.float().mean()), float(xtr.float().std())
    val = [t.to(device) for t in feats.select(set(split.get("val", [])))]
    fresh = resumed is None
    model = SpectrogramClassifier(
        backbone if backbone is not None else initial_backbone(cfg, len(feats.label_names), fresh),
        mean,
        std,
    )
    batches = WindowBatches(
        xtr, ytr, cfg.batch_size, cfg.seed, augment_config(cfg), model, len(feats.label_names)
    )
    spe = batches.steps_per_epoch
    total, warmup, freeze = epochs * spe, int(cfg.warmup_epochs * spe), cfg.freeze_epochs * spe
    freeze = min(freeze, max(total - spe, 0))
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
            lambda s: warmup_cosine_factor(max(s - freeze, 0), warmup, total - freeze, 0.01),
            lambda s: warmup_cosine_factor(s, warmup, total, 0.01),
        ],
    )
    trainer = Trainer(
        model, optimizer, schedule, device=device, precision=cfg.precision, compile=cfg.compile
    )
    ckpt = CheckpointManager(run.checkpoints, project=PROJECT, monitor="val_loss", mode="min")
    if resumed is not None:
        resume_run(trainer, resumed, ckpt, run, resume_path, cfg.quiet)

    def evaluate(tr: Trainer) -> dict[str, float]:
        with tr.autocast():
            m = evaluate_windows(tr.eval_model, model.normalise, *val, batch_size=256)
        return {
            "val_loss": m["loss"],
            "val_acc": m["window_accuracy"],
            "val_clip_acc": m["clip_accuracy"],
        }

    extra = {
        "config": to_jsonable(cfg),
        "backbone": cfg.model,
        "split": split,
        "genres": list(feats.label_names),
        "feature_params": dataclasses.asdict(feature_params(cfg)),
    }
    result = fit(
        trainer,
        batches,
        loss_fn,
        Cadence.by_epoch(epochs, spe, cfg.max_minutes),
        evaluate=evaluate if len(val[1]) else None,
        run=run,
        checkpoints=ckpt,
        extra_state=extra,
        plot=LivePlot(run.figure("curves.png"), every=2, title=title),
        callbacks=[FreezeBody(model, freeze)] if freeze else [],
        quiet=cfg.quiet,
    )
    for p in model.parameters():
        p.requires_grad_(True)
    path = ckpt.best_path if keep == "best" and ckpt.best_path.is_file() else ckpt.last_path
    chosen = trainer.epoch
    if is_main() and path == ckpt.best_path:
        best = load_checkpoint(path, project=PROJECT, required=CHECKPOINT_KEYS, map_location=device)
        model.load_state_dict(best["model"])
        chosen = int(best["epoch"])
    return Trained(model, trainer, result, str(path), chosen)


def train_audio(cfg: TrainConfig) -> tuple[Run, dict]:
    """One split: train, choose ``best.pt`` on validation, then test and baseline once."""
    seed_everything(cfg.seed)
    device = select_device(cfg.device)
    resume_path = resolve_resume(cfg.resume, out=cfg.out, runs_root=runs_root(PROJECT))
    resumed = (
        load_checkpoint(resume_path, project=PROJECT, required=CHECKPOINT_KEYS, map_location=device)
        if resume_path
        else None
    )
    if resumed is not None:  # the model a run started with is the one it goes on with
        check_resume_settings(
            resume_path,
            resumed["config"],
            cfg,
            ("model", "window_seconds", "hop_seconds", "n_mels"),
        )
    clips, feats = load_clip_features(cfg, device)
    split = resumed["split"] if resumed is not None else make_split(cfg, clips)
    overlap = set(split["train"]) & (set(split["val"]) | set(split["test"]))
    if overlap:
        raise UserError(f"clips in both training and evaluation splits: {sorted(overlap)[:5]}")
    info(
        f"split by clip: {len(split['train'])} train / {len(split['val'])} val / "
        f"{len(split['test'])} test clips on {device}",
        cfg.quiet,
    )
    backbone = initial_backbone(
        cfg, len(feats.label_names), fresh=resumed is None
    )  # before the folder: may fail
    run = Run(PROJECT, cfg.out, cfg, resume_from=resume_path)
    trained = train_network(
        cfg,
        feats,
        split,
        run,
        device,
        epochs=cfg.epochs,
        resumed=resumed,
        resume_path=resume_path,
        title=f"audio-net {cfg.model} on GTZAN",
        backbone=backbone,
    )
    if not is_main():
        return run, {}
    test = report(
        trained.model,
        feats,
        split["test"],
        run,
        device,
        trained.trainer.autocast,
        title="held-out test clips",
    )
    base = baseline_report(
        feats, split["train"], split["test"], run.figure("baseline_confusion_matrix.png")
    )
    return run, {
        "device": str(device),
        "world_size": world_size(),
        "model": cfg.model,
        "pretrained": bool(cfg.model == "resnet18" and (cfg.pretrained or cfg.weights)),
        "clips": {k: len(v) for k, v in split.items()},
        "train_windows": int(feats.select(set(split["train"]))[1].numel()),
        "skipped_files": len(feats.skipped),
        "epochs": trained.trainer.epoch,
        "train_seconds": trained.result["train_seconds"],
        "best_epoch": trained.chosen_epoch,
        "val_loss": round(trained.result.get("val_loss", float("nan")), 4),
        "val_clip_accuracy": round(trained.result.get("val_clip_acc", float("nan")), 4),
        **{f"test_{k}": v for k, v in test.items()},
        "baseline_clip_accuracy": base["clip_accuracy"],
        "baseline_macro_f1": base["macro_f1"],
        "checkpoint": trained.checkpoint,
    }


def mean_std(values: list[float]) -> tuple[float, float]:
    return round(statistics.fmean(values), 4), round(
        statistics.pstdev(values) if len(values) > 1 else 0.0, 4
    )


def chosen_epochs(fold_runs: list[Run], epochs: int) -> int:
    """The epoch count with the lowest held-out loss averaged over the folds (the final model's
    schedule); the fold scores themselves are taken at the end of the schedule, untouched."""
    curves = []
    for r in fold_runs:
        rows = [row for row in r.metrics.rows if "val_loss" in row]
        curves.append({int(row["epoch"]): float(row["val_loss"]) for row in rows})
    common = sorted(set.intersection(*(set(c) for c in curves))) if curves else []
    if not common:
        return epochs
    return min(common, key=lambda e: statistics.fmean(c[e] for c in curves))


def train_cv(cfg: TrainConfig) -> tuple[Run, dict]:
    """``--cv K``: one network and one baseline per fold, then the final network on every clip."""
    if cfg.resume is not None:
        raise UserError("--resume continues a single-split run; --cv runs are not resumable")
    seed_everything(cfg.seed)
    device = select_device(cfg.device)
    clips, feats = load_clip_features(cfg, device)
    folds = cv_folds(clips, cfg.cv, cfg.seed)
    initial_backbone(
        cfg, len(feats.label_names)
    )  # the weights load (or fail, offline) before the run folder exists
    run = Run(PROJECT, cfg.out, cfg)
    names = [c.name for c in clips]
    rows, fold_runs = [], []
    for k, fold in enumerate(folds):
        held = [c.name for c in fold]
        split = {"train": [n for n in names if n not in set(held)], "val": held, "test": held}
        info(
            f"fold {k + 1}/{cfg.cv}: {len(split['train'])} training clips, {len(held)} held out",
            cfg.quiet,
        )
        fold_run = Run(PROJECT, run.path / "folds" / f"fold{k + 1}", cfg)
        fold_runs.append(fold_run)
        trained = train_network(
            cfg,
            feats,
            split,
            fold_run,
            device,
            epochs=cfg.epochs,
            keep="last",
            title=f"audio-net {cfg.model}, fold {k + 1}/{cfg.cv}",
        )
        if not is_main():
            continue
        net = report(
            trained.model,
            feats,
            held,
            fold_run,
            device,
            trained.trainer.autocast,
            title=f"fold {k + 1} held-out clips",
        )
        base = baseline_report(
            feats, split["train"], held, fold_run.figure("baseline_confusion_matrix.png")
        )
        rows.append(
            {
                "fold": k + 1,
                "clips": len(held),
                "test_clip_accuracy": net["clip_accuracy"],
                "test_window_accuracy": net["window_accuracy"],
                "test_macro_f1": net["macro_f1"],
                "baseline_clip_accuracy": base["clip_accuracy"],
                "baseline_macro_f1": base["macro_f1"],
                "train_seconds": trained.result["train_seconds"],
            }
        )
        info(
            f"fold {k + 1}: network {net['clip_accuracy']:.2f}, baseline "
            f"{base['clip_accuracy']:.2f} clip accuracy",
            cfg.quiet,
        )
    epochs = chosen_epochs(fold_runs, cfg.epochs) if is_main() else cfg.epochs
    from shared.distributed import broadcast_object

    epochs = int(broadcast_object(epochs))
    info(f"final model: every clip, {epochs} epochs (chosen by the folds)", cfg.quiet)
    final = train_network(
        cfg,
        feats,
        {"train": names, "val": [], "test": []},
        run,
        device,
        epochs=epochs,
        keep="last",
        title=f"audio-net {cfg.model}, all {len(names)} clips",
    )
    if not is_main():
        return run, {}
    summary: dict = {
        "device": str(device),
        "world_size": world_size(),
        "model": cfg.model,
        "pretrained": bool(cfg.model == "resnet18" and (cfg.pretrained or cfg.weights)),
        "cv_folds": cfg.cv,
        "clips": len(names),
        "skipped_files": len(feats.skipped),
    }
    for key in (
        "test_clip_accuracy",
        "test_window_accuracy",
        "test_macro_f1",
        "baseline_clip_accuracy",
        "baseline_macro_f1",
    ):
        summary[key], summary[f"{key}_std"] = mean_std([r[key] for r in rows])
    summary["gain_over_baseline"] = round(
        summary["test_clip_accuracy"] - summary["baseline_clip_accuracy"], 4
    )
    summary.update(
        {
            "folds": rows,
            "epochs": cfg.epochs,
            "final_epochs": epochs,
            "train_seconds": round(
                sum(r["train_seconds"] for r in rows) + final.result["train_seconds"], 1
            ),
            "checkpoint": final.checkpoint,
        }
    )
    return run, summary
