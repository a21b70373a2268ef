"""``audio-net train``: clips -> cached log-mel windows -> a network, beside a classical baseline.

``train`` reads top to bottom as a run happens: the flags settled; the device; the clips found
(GTZAN, or your label folders); the backbone (ImageNet's ResNet18, a small CNN, or AST: a pretrained source is checked
before any clip is featurized); the clips' windows, featurized once and cached; the split by
clip; the run folder; the network trained by ``train_network`` (shared's ``fit``, ``best.pt``
chosen on validation clips only); the test clips scored once, beside the baseline.

``--cv K`` (small sets): K stratified folds by clip, one network and one baseline per fold scored
on the same held-out clips, then a final network on every clip for ``predict``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import statistics

import torch
import torch.nn.functional as F

from audio_net.ast_backbone import (
    ast_config,
    normalisation,
    pretrained_backbone,
    read_json,
    source_folder,
)
from audio_net.augment import AugmentConfig, augment
from audio_net.baseline import baseline_report
from audio_net.config import TrainConfig, feature_params
from audio_net.dataset import (
    Clip,
    artist_split,
    check_split,
    cv_folds,
    find_gtzan,
    labels_of,
    split_clips,
    split_from_files,
)
from audio_net.evaluate import report
from audio_net.features import Features, load_features
from audio_net.inference import CHECKPOINT_FORMAT, CHECKPOINT_KEYS, PROJECT
from audio_net.model import SpectrogramClassifier, build_backbone, evaluate_windows
from shared.checkpoint import Resumed, read_resume
from shared.device import (
    broadcast_object,
    is_main,
    seeded_device,
    world_size,
)
from shared.errors import UserError
from shared.progress import warn
from shared.runs import Run
from shared.training import (
    AutoLength,
    EpochBatches,
    Fitted,
    Freeze,
    Plot,
    WarmupCosine,
    fit,
)

log = logging.getLogger(__name__)

# step s's augmentation draws from a generator seeded (seed, AUGMENT_STREAM + s): a stream apart
# from the batch order's, both pure functions of the step (exact resume)
AUGMENT_STREAM = 10_000_000

# --epochs auto: at least 30 epochs and 2,000 steps; --patience: 10 epochs or 400 steps
LENGTH = AutoLength(min_epochs=30, min_steps=2000, patience_epochs=10, patience_steps=400)

# what a resumed run must keep: the network and the features it reads
MODEL_SETTINGS = ("model", "model_source", "window_seconds", "hop_seconds", "n_mels")


def train(cfg: TrainConfig) -> dict:
    """``audio-net train``: one split, or ``--cv K`` (``train_cv``); returns the run's summary."""
    cfg.settle()  # the defaults that follow --model and its weights; the rules across flags
    if cfg.cv:
        return train_cv(cfg)
    device = seeded_device(cfg.device, cfg.seed)
    keys = (*CHECKPOINT_KEYS, "config")  # what predict needs, and the run's flags
    resumed = read_resume(cfg, PROJECT, keys, MODEL_SETTINGS) if cfg.resume else None

    # the clips, the backbone, the clips' windows and their split
    clips = find_gtzan(cfg.data_dir, download=cfg.download, quiet=cfg.quiet)
    backbone = initial_backbone(cfg, labels_of(clips), resumed)
    feats = featurized(cfg, clips, device)
    usable = [c for c in clips if c.name in set(feats.names)]
    split = resumed.state["split"] if resumed is not None else make_split(cfg, usable)
    overlap = set(split["train"]) & (set(split["val"]) | set(split["test"]))
    if overlap:
        raise UserError(f"clips in both training and evaluation splits: {sorted(overlap)[:5]}")
    log.info(
        f"split by clip: {len(split['train'])} train / {len(split['val'])} val / "
        f"{len(split['test'])} test clips on {device}"
    )

    # the run folder, the network trained, the test clips scored once beside the baseline
    run = Run(PROJECT, cfg.out, cfg, resume_from=resumed.path if resumed else None)
    title = f"audio-net {cfg.model} on GTZAN"
    fitted, epochs = train_network(cfg, feats, split, backbone, run, device, resumed, title=title)
    if not is_main():
        return {}
    test, base = scores(fitted, feats, split, run, "held-out test clips")
    return run.finish(
        {
            **common_summary(cfg, fitted, feats),
            "clips": {k: len(v) for k, v in split.items()},
            "train_windows": int(feats.select(set(split["train"]))[1].numel()),
            "epochs": fitted.trainer.epoch,
            "train_seconds": fitted.result["train_seconds"],
            "best_epoch": fitted.epoch,
            "val_loss": round(fitted.result.get("val_loss", float("nan")), 4),
            "val_clip_accuracy": round(fitted.result.get("val_clip_acc", float("nan")), 4),
            **{f"test_{k}": v for k, v in test.items()},
            "baseline_clip_accuracy": base["clip_accuracy"],
            "baseline_macro_f1": base["macro_f1"],
            "planned_epochs": epochs,
            "stop_reason": fitted.result["stop_reason"],
            **below_baseline(test["clip_accuracy"], base["clip_accuracy"], cfg),
            "checkpoint": str(fitted.checkpoint),
        }
    )


def featurized(cfg: TrainConfig, clips: list[Clip], device) -> Features:
    """The clips' windows (cached: decoded and featurized once for every later run)."""
    feats, cached = load_features(
        clips, feature_params(cfg), cfg.cache_dir, device, quiet=cfg.quiet
    )
    log.info(
        f"features: {len(feats.windows)} windows of {len(feats.names)} clips"
        f"{' (from the cache)' if cached else ''}"
    )
    return feats


def train_network(
    cfg: TrainConfig,
    feats: Features,
    split: dict[str, list[str]],
    backbone: torch.nn.Module,
    run: Run,
    device,
    resumed: Resumed | None = None,
    *,
    title: str,
    epochs: int | None = None,
    scored_held_out: bool = False,
) -> tuple[Fitted, int]:
    """One network on ``split["train"]``, evaluated on ``split["val"]`` (if any) every epoch; the
    weights kept: ``best.pt``'s, chosen there, or (``scored_held_out``: a fold's held-out clips
    are its scored ones, they must choose nothing) the end of the schedule. Returns what ``fit``
    gave and the epochs the schedule was laid out for (``epochs``: given, or from ``--epochs``)."""
    xtr, ytr = (t.to(device) for t in feats.select(set(split["train"]))[:2])
    val = [t.to(device) for t in feats.select(set(split.get("val", [])))]
    model = SpectrogramClassifier(backbone, *input_statistics(cfg, xtr))
    aug, classes = augment_config(cfg), len(feats.label_names)
    batches = window_batches(xtr, ytr, cfg.batch_size, cfg.seed, aug, model, classes)
    has_val = bool(len(val[1]))
    planned, cadence = LENGTH.cadence(
        cfg.epochs,
        cfg.patience,
        batches,
        validates=has_val and not scored_held_out,
        epochs=epochs,
        max_minutes=cfg.max_minutes,
    )
    optimizer, schedule, freeze = optimizer_and_schedule(cfg, model, planned, cadence, device)
    fitted = fit(
        model,
        optimizer,
        batches,
        loss_fn,
        cadence,
        run=run,
        device=device,
        schedule=schedule,
        evaluate=(lambda m: validation(m, model, val)) if has_val else None,
        keep="last" if scored_held_out else "best",
        precision=cfg.precision,
        compile=cfg.compile,
        resumed=resumed,
        extra_state={
            "backbone": cfg.model,
            "split": split,
            "labels": list(feats.label_names),
            "audio_net_format": CHECKPOINT_FORMAT,
            "feature_params": dataclasses.asdict(feature_params(cfg)),
            **backbone_config(backbone),
        },
        plot=Plot("curves.png", title, redraw_every=2),
        freeze=Freeze(model.body_parameters, freeze) if freeze else None,
        quiet=cfg.quiet,
    )
    return fitted, planned


def optimizer_and_schedule(
    cfg: TrainConfig, model: SpectrogramClassifier, planned: int, cadence, device
):
    """AdamW with a lower learning rate for the pretrained body, warmup + cosine per group; the
    body's schedule starts after the ``--freeze-epochs`` steps in which only the head trains.
    Returns the optimizer, the schedule and those steps."""
    epoch = cadence.steps_per_epoch
    total, warmup = planned * epoch, int(cfg.warmup_epochs * epoch)
    freeze = min(cfg.freeze_epochs * epoch, max(total - epoch, 0))
    groups = [
        {"params": model.body_parameters(), "lr": cfg.lr * cfg.backbone_lr_ratio},
        {"params": model.head_parameters(), "lr": cfg.lr},
    ]
    fused = device.type in ("cuda", "cpu")  # one kernel for every parameter where PyTorch has it
    optimizer = torch.optim.AdamW(groups, weight_decay=cfg.weight_decay, fused=fused)
    schedule = [
        WarmupCosine(warmup, total - freeze, 0.01, delay=freeze),
        WarmupCosine(warmup, total, 0.01),
    ]
    return optimizer, schedule, freeze


def validation(eval_model, model: SpectrogramClassifier, val) -> dict[str, float]:
    """What ``fit`` logs at each evaluation: loss, window and clip accuracy on the validation clips."""
    m = evaluate_windows(eval_model, model.normalise, *val)
    return {
        "val_loss": m["loss"],
        "val_acc": m["window_accuracy"],
        "val_clip_acc": m["clip_accuracy"],
    }


def scores(fitted: Fitted, feats: Features, split: dict, run: Run, title: str) -> tuple[dict, dict]:
    """The network's and the baseline's scores on the test clips (with their figures)."""
    held = split["test"]
    net = report(
        fitted.model, feats, held, run, fitted.trainer.device, fitted.trainer.autocast, title=title
    )
    base = baseline_report(feats, split["train"], held, run.figure("baseline_confusion_matrix.png"))
    return net, base


def common_summary(cfg: TrainConfig, fitted: Fitted, feats: Features) -> dict:
    """The keys every audio-net training summary starts with: where it ran, what model."""
    return {
        "device": str(fitted.trainer.device),
        "world_size": world_size(),
        "model": cfg.model,
        "pretrained": cfg.from_pretrained,
        **({"model_source": cfg.model_source or "default"} if cfg.model == "ast" else {}),
        "skipped_files": len(feats.skipped),
        **peak_memory(fitted.trainer.device),
    }


def train_cv(cfg: TrainConfig) -> dict:
    """``--cv K``: one network and one baseline per fold, then the final network on every clip.
    The folds are runs of their own in ``<run>/folds/foldK``; the final network trains into the
    run folder itself, which is opened (after the clips are read, so a refusal leaves nothing)
    and finished here, with the folds' scores."""
    if cfg.resume is not None:
        raise UserError("--resume continues a single-split run; --cv runs are not resumable")
    device = seeded_device(cfg.device, cfg.seed)
    clips = find_gtzan(cfg.data_dir, download=cfg.download, quiet=cfg.quiet)
    initial_backbone(cfg, labels_of(clips))  # loads (or fails, offline) before any work
    feats = featurized(cfg, clips, device)  # decoded once, for every fold
    clips = [c for c in clips if c.name in set(feats.names)]
    folds = cv_folds(clips, cfg.cv, cfg.seed)  # (refused here, before the run folder exists)
    run = Run(PROJECT, cfg.out, cfg)
    names = [c.name for c in clips]
    rows, fold_runs = train_folds(cfg, feats, folds, names, run, device)
    # --epochs auto: what the (equal-sized) folds resolved it to, known to rank 0
    fold_epochs = int(rows[-1]["planned_epochs"]) if is_main() else 0
    epochs = int(broadcast_object(chosen_epochs(fold_runs, fold_epochs) if is_main() else 0))
    log.info(f"final model: every clip, {epochs} epochs (chosen by the folds)")
    everything = {"train": names, "val": [], "test": []}
    title = f"audio-net {cfg.model}, all {len(names)} clips"
    backbone = initial_backbone(cfg, feats.label_names)
    final, _ = train_network(
        cfg,
        feats,
        everything,
        backbone,
        run,
        device,
        title=title,
        epochs=epochs,
        scored_held_out=True,
    )
    if not is_main():
        return {}
    last = {
        **common_summary(cfg, final, feats),
        "train_seconds": final.result["train_seconds"],
        "checkpoint": str(final.checkpoint),
    }
    return run.finish(cv_summary(cfg, rows, last, (fold_epochs, epochs), len(names)))


def train_folds(cfg: TrainConfig, feats: Features, folds, names: list[str], run: Run, device):
    """One network and one baseline per fold, each scored once on its held-out clips (rank 0);
    returns the folds' summaries and their runs."""
    rows, fold_runs = [], []
    for k, fold in enumerate(folds, start=1):
        held = [c.name for c in fold]
        split = {"train": [n for n in names if n not in set(held)], "val": held, "test": held}
        log.info(f"fold {k}/{cfg.cv}: {len(split['train'])} training clips, {len(held)} held out")
        fold_cfg = dataclasses.replace(cfg, out=run.path / "folds" / f"fold{k}")
        fold_run = Run(PROJECT, fold_cfg.out, fold_cfg)
        backbone = initial_backbone(cfg, feats.label_names)
        title = f"audio-net {cfg.model}, fold {k}/{cfg.cv}"
        fitted, planned = train_network(
            cfg, feats, split, backbone, fold_run, device, title=title, scored_held_out=True
        )
        if is_main():
            net, base = scores(fitted, feats, split, fold_run, f"fold {k} held-out clips")
            rows.append(fold_summary(k, split, fitted, planned, net, base))
            fold_run.finish(rows[-1])
            log.info(
                f"fold {k}: network {net['clip_accuracy']:.2f}, baseline "
                f"{base['clip_accuracy']:.2f} clip accuracy"
            )
        fold_runs.append(fold_run)
    return rows, fold_runs


def fold_summary(k: int, split: dict, fitted: Fitted, planned: int, net: dict, base: dict) -> dict:
    return {
        "fold": k,
        "clips": len(split["test"]),
        "test_clip_accuracy": net["clip_accuracy"],
        "test_window_accuracy": net["window_accuracy"],
        "test_macro_f1": net["macro_f1"],
        "baseline_clip_accuracy": base["clip_accuracy"],
        "baseline_macro_f1": base["macro_f1"],
        "planned_epochs": planned,
        "train_seconds": fitted.result["train_seconds"],
    }


def make_split(cfg: TrainConfig, clips: list[Clip]) -> dict[str, list[str]]:
    if cfg.split_file:
        split = split_from_files(clips, cfg.split_file)
    elif cfg.split == "artist":
        split = artist_split(clips, cfg.quiet)
    else:
        split = split_clips(clips, cfg.seed, cfg.val_fraction, cfg.test_fraction)
    check_split(split)
    return {k: [c.name for c in v] for k, v in split.items()}


def window_batches(x, y, batch_size: int, seed: int, aug, model, classes: int) -> EpochBatches:
    """The batches of each step, sliced from the on-device training windows in a seeded epoch
    order, normalised and augmented (the augmentation's draws from the step's generator)."""

    def make(rows: torch.Tensor, g: torch.Generator):
        xb, yb = model.normalise(x[rows]), y[rows]
        if aug is None:
            return xb, F.one_hot(yb, classes).float()
        return augment(xb, yb, aug, g, classes)

    return EpochBatches(len(y), batch_size, seed, x.device, make, stream=AUGMENT_STREAM)


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


def initial_backbone(cfg: TrainConfig, labels: list[str], resumed: Resumed | None = None):
    """The backbone a run starts from: ImageNet weights (a new resnet18 run), AST's (a new ast
    run: every number of its source checked first) or random ones (a resumed run's weights are
    loaded by ``fit``). Built before any clip is featurized and before the run folder exists, so
    that missing weights offline or a bad source leave nothing behind."""
    if cfg.model == "ast":
        return initial_ast(cfg, labels, resumed)
    fresh = resumed is None
    pretrained = cfg.pretrained and fresh and cfg.model == "resnet18"
    return build_backbone(cfg.model, len(labels), pretrained, cfg.weights if fresh else None)


def initial_ast(cfg: TrainConfig, labels: list[str], resumed: Resumed | None):
    """AST from ``--model-source`` (its weights, a new head for ``labels``), or from the resumed
    checkpoint's config (its weights come with the trainer's state)."""
    if resumed is not None:
        config = ast_config(resumed.state.get("ast_config") or {}, labels, "the resumed checkpoint")
        return build_backbone("ast", len(labels), ast_config=config)
    folder = ast_folder(cfg)
    if cfg.pretrained:
        return pretrained_backbone(folder, labels)
    config = ast_config(read_json(folder / "config.json"), labels, folder)
    return build_backbone("ast", len(labels), ast_config=config)


def ast_folder(cfg: TrainConfig):
    return source_folder(cfg.model_source, cfg.quiet)


def input_statistics(cfg: TrainConfig, x: torch.Tensor) -> tuple[float, float]:
    """(mean, scale) the classifier normalises with: the training windows' own, or for AST the
    statistics of its pretraining (its weights expect exactly those inputs)."""
    if cfg.model == "ast":
        return normalisation(ast_folder(cfg))
    return float(x.float().mean()), float(x.float().std())


def backbone_config(backbone: torch.nn.Module) -> dict:
    """What a checkpoint needs to rebuild the backbone beyond its name: AST's transformers config
    (plain JSON values, read back through ``ast.ast_config``)."""
    ast = getattr(backbone, "ast", None)
    if ast is None:
        return {}
    return {"ast_config": json.loads(ast.config.to_json_string(use_diff=False))}


def below_baseline(network: float, baseline: float, cfg: TrainConfig) -> dict:
    """A network that scores below the classical baseline says so: one line on stderr, and the
    same advice in the summary under ``warning``."""
    if not network < baseline:
        return {}
    advice = (
        f"the network ({network:.2f} clip accuracy) is below the baseline ({baseline:.2f}): "
        "try --epochs auto (or more epochs)"
        + (
            ""
            if cfg.model in ("auto", "resnet18") and cfg.pretrained
            else ", ImageNet weights (--model resnet18)"
        )
        + ", or more clips per label"
    )
    warn(advice)
    return {"warning": advice}


def peak_memory(device: torch.device) -> dict:
    """The most GPU memory the run held at once (CUDA only: a CPU has no such counter)."""
    if device.type != "cuda":
        return {}
    return {"peak_memory_gb": round(torch.cuda.max_memory_allocated(device) / 1e9, 2)}


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


def cv_summary(cfg: TrainConfig, rows: list[dict], final: dict, epochs: tuple, clips: int) -> dict:
    """The folds' mean scores beside the baseline's; ``epochs``: (each fold's, the final model's)."""
    summary: dict = {**final, "cv_folds": cfg.cv, "clips": clips}
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
        below_baseline(summary["test_clip_accuracy"], summary["baseline_clip_accuracy"], cfg)
    )
    summary.update(
        {
            "folds": rows,
            "epochs": epochs[0],
            "final_epochs": epochs[1],
            "train_seconds": round(
                sum(r["train_seconds"] for r in rows) + final["train_seconds"], 1
            ),
            "checkpoint": final["checkpoint"],
        }
    )
    return summary
