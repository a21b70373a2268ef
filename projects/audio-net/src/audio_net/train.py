"""``audio-net train``: GTZAN clips -> cached log-mel windows -> a network, beside a baseline.

One split (train / val / test by clip) or, for small sets, ``--cv K``: K stratified folds by clip,
one network and one baseline per fold scored on the same held-out clips, then a final network on
every clip for ``predict``. ``best.pt`` is chosen on validation clips only; test clips (or a fold's
held-out clips) are scored once, at the end.
"""

from __future__ import annotations

import dataclasses
import json
import statistics

import torch
import torch.nn.functional as F

from audio_net.ast import (
    DEFAULT_SOURCE,
    ast_config,
    normalisation,
    pretrained_backbone,
    read_json,
    source_folder,
)
from audio_net.augment import AugmentConfig, augment
from audio_net.baseline import baseline_report
from audio_net.config import TrainConfig
from audio_net.data import feature_params, load_clip_features
from audio_net.dataset import (
    Clip,
    artist_split,
    check_split,
    cv_folds,
    split_clips,
    split_from_files,
)
from audio_net.evaluate import evaluate_windows, report
from audio_net.features import Features
from audio_net.inference import CHECKPOINT_FORMAT, CHECKPOINT_KEYS, PROJECT
from audio_net.model import SpectrogramClassifier, build_backbone
from shared.batching import EpochBatches
from shared.device import make_generator, select_device
from shared.distributed import broadcast_object, is_main, world_size
from shared.errors import UserError
from shared.length import AutoLength
from shared.lifecycle import Outcome, Plan, TrainingTask, run_training, train_into
from shared.optim import adamw, warmup_cosine_factor
from shared.plots import LivePlot
from shared.progress import info, warn
from shared.runs import Run
from shared.training import Callback, Trainer

# step s's augmentation draws from a generator seeded (seed, AUGMENT_STREAM + s): a stream apart
# from the batch order's, both pure functions of the step (exact resume)
AUGMENT_STREAM = 10_000_000

# --epochs auto: at least 30 epochs and 2,000 steps; --patience: 10 epochs or 400 steps
LENGTH = AutoLength(min_epochs=30, min_steps=2000, patience_epochs=10, patience_steps=400)


def make_split(cfg: TrainConfig, clips: list[Clip]) -> dict[str, list[str]]:
    if cfg.split_file:
        split = split_from_files(clips, cfg.split_file)
    elif cfg.split == "artist":
        split = artist_split(clips, cfg.quiet)
    else:
        split = split_clips(clips, cfg.seed, cfg.val_fraction, cfg.test_fraction)
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
        return [
            augment(x, y, self.aug, make_generator(self.seed, AUGMENT_STREAM + step), self.classes)
        ]


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


def initial_backbone(
    cfg: TrainConfig, labels: list[str], fresh: bool = True, resumed: dict | None = None
) -> torch.nn.Module:
    """The backbone a run starts from: ImageNet weights (a fresh resnet18 run), AST's (a fresh
    ast run) or random ones (a resumed run's are loaded after). Built before the run folder
    exists, so that missing weights offline leave no folder behind."""
    if cfg.model == "ast":
        return initial_ast(cfg, labels, fresh, resumed)
    return build_backbone(
        cfg.model,
        len(labels),
        cfg.pretrained and fresh and cfg.model == "resnet18",
        cfg.weights if fresh else None,
    )


def initial_ast(cfg: TrainConfig, labels: list[str], fresh: bool, resumed: dict | None):
    """AST from ``--model-source`` (its weights, a new head for ``labels``), or from the resumed
    checkpoint's config (its weights come with the trainer's state)."""
    if resumed is not None:
        config = ast_config(resumed.get("ast_config") or {}, labels, "the resumed checkpoint")
        return build_backbone("ast", len(labels), ast_config=config)
    folder = ast_folder(cfg)
    if fresh and cfg.pretrained:
        return pretrained_backbone(folder, labels)
    config = ast_config(read_json(folder / "config.json"), labels, folder)
    return build_backbone("ast", len(labels), ast_config=config)


def ast_folder(cfg: TrainConfig):
    return source_folder(cfg.model_source or DEFAULT_SOURCE, cfg.quiet)


def input_statistics(cfg: TrainConfig, x: torch.Tensor) -> tuple[float, float]:
    """(mean, scale) the classifier normalises with: the training windows' own, or for AST the
    statistics of its pretraining (its weights expect exactly those inputs)."""
    if cfg.model == "ast":
        return normalisation(ast_folder(cfg))
    return float(x.float().mean()), float(x.float().std())


@dataclasses.dataclass
class ClipsRun:
    """What ``plan`` read and resolved, for the summary: the clips' features, their split and the
    epochs the schedule was laid out for."""

    feats: Features
    split: dict[str, list[str]]
    planned_epochs: int


class AudioTask(TrainingTask):
    """One network on ``split["train"]``, evaluated on ``split["val"]`` every epoch (if any),
    ``best.pt`` chosen there; the summary scores the test clips once, beside the baseline.

    Subclasses train a cross-validation fold or the final model on clips already loaded (given to
    the constructor, with the epochs the final model trains)."""

    project = PROJECT
    checkpoint_keys = (*CHECKPOINT_KEYS, "config")  # what predict needs, and the run's flags
    settings_fixed_on_resume = ("model", "model_source", "window_seconds", "hop_seconds", "n_mels")

    early_stops = True  # validation may stop the run (never where it is the scored set)

    def __init__(self, feats: Features | None = None, split=None, epochs: int | None = None):
        self.feats, self.split, self.epochs = feats, split, epochs

    def title(self, cfg: TrainConfig) -> str:
        return f"audio-net {cfg.model} on GTZAN"

    def clips(self, cfg: TrainConfig, device, resumed) -> tuple[Features, dict]:
        """The clips' features and their split: the ones a cross-validation handed over, else
        read here (a resumed run keeps its own split)."""
        if self.feats is not None:
            return self.feats, self.split
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
        return feats, split

    def plan(self, cfg: TrainConfig, device, resumed, resume_path) -> Plan:
        feats, split = self.clips(cfg, device, resumed)
        backbone = initial_backbone(cfg, feats.label_names, resumed is None, resumed)
        xtr, ytr, _ = feats.select(set(split["train"]))
        xtr, ytr = xtr.to(device), ytr.to(device)
        val = [t.to(device) for t in feats.select(set(split.get("val", [])))]
        model = SpectrogramClassifier(backbone, *input_statistics(cfg, xtr))
        batches = WindowBatches(
            xtr, ytr, cfg.batch_size, cfg.seed, augment_config(cfg), model, len(feats.label_names)
        )
        has_val = bool(len(val[1]))
        epochs, cadence = LENGTH.cadence(
            cfg.epochs,
            cfg.patience,
            batches.steps_per_epoch,
            validates=has_val and self.early_stops,
            epochs=self.epochs,
            max_minutes=cfg.max_minutes,
            quiet=cfg.quiet,
        )
        optimizer, schedule, freeze = optimizer_and_schedule(
            cfg, model, device, epochs, batches.steps_per_epoch
        )

        def evaluate(tr: Trainer) -> dict[str, float]:
            with tr.autocast():
                m = evaluate_windows(tr.eval_model, model.normalise, *val)
            return {
                "val_loss": m["loss"],
                "val_acc": m["window_accuracy"],
                "val_clip_acc": m["clip_accuracy"],
            }

        return Plan(
            model=model,
            optimizer=optimizer,
            scheduler=schedule,
            batch_for_step=batches,
            loss_fn=loss_fn,
            cadence=cadence,
            evaluate=evaluate if has_val else None,
            extra_state={
                "backbone": cfg.model,
                "split": split,
                "labels": list(feats.label_names),
                "audio_net_format": CHECKPOINT_FORMAT,
                "feature_params": dataclasses.asdict(feature_params(cfg)),
                **backbone_config(backbone),
            },
            plot=LivePlot("curves.png", redraw_every=2, title=self.title(cfg)),
            callbacks=[FreezeBody(model, freeze)] if freeze else [],
            prepared=ClipsRun(feats, split, epochs),
        )

    def scores(self, outcome: Outcome, clips: ClipsRun, title: str) -> tuple[dict, dict]:
        """The network's and the baseline's scores on the test clips (with their figures)."""
        run, feats, held = outcome.run, clips.feats, clips.split["test"]
        net = report(
            outcome.model, feats, held, run, outcome.device, outcome.trainer.autocast, title=title
        )
        base = baseline_report(
            feats, clips.split["train"], held, run.figure("baseline_confusion_matrix.png")
        )
        return net, base

    def summary(self, cfg: TrainConfig, outcome: Outcome, clips: ClipsRun) -> dict:
        split, result = clips.split, outcome.result
        test, base = self.scores(outcome, clips, "held-out test clips")
        return {
            **common_summary(cfg, outcome, clips.feats),
            "clips": {k: len(v) for k, v in split.items()},
            "train_windows": int(clips.feats.select(set(split["train"]))[1].numel()),
            "epochs": outcome.trainer.epoch,
            "train_seconds": result["train_seconds"],
            "best_epoch": outcome.chosen_epoch,
            "val_loss": round(result.get("val_loss", float("nan")), 4),
            "val_clip_accuracy": round(result.get("val_clip_acc", float("nan")), 4),
            **{f"test_{k}": v for k, v in test.items()},
            "baseline_clip_accuracy": base["clip_accuracy"],
            "baseline_macro_f1": base["macro_f1"],
            "planned_epochs": clips.planned_epochs,
            "stop_reason": result["stop_reason"],
            **below_baseline(test["clip_accuracy"], base["clip_accuracy"], cfg),
            "checkpoint": str(outcome.checkpoint),
        }


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


def common_summary(cfg: TrainConfig, outcome: Outcome, feats: Features) -> dict:
    """The keys every audio-net training summary starts with: where it ran, what model."""
    return {
        "device": str(outcome.device),
        "world_size": world_size(),
        "model": cfg.model,
        "pretrained": cfg.from_pretrained,
        **({"model_source": cfg.model_source or "default"} if cfg.model == "ast" else {}),
        "skipped_files": len(feats.skipped),
        **peak_memory(outcome.device),
    }


def peak_memory(device: torch.device) -> dict:
    """The most GPU memory the run held at once (CUDA only: a CPU has no such counter)."""
    if device.type != "cuda":
        return {}
    return {"peak_memory_gb": round(torch.cuda.max_memory_allocated(device) / 1e9, 2)}


def optimizer_and_schedule(
    cfg: TrainConfig, model: SpectrogramClassifier, device, epochs, steps_per_epoch
):
    """AdamW with a lower learning rate for the pretrained body, warmup + cosine per group; the
    body's schedule starts after the ``--freeze-epochs`` steps in which only the head trains."""
    total, warmup, freeze = (
        epochs * steps_per_epoch,
        int(cfg.warmup_epochs * steps_per_epoch),
        cfg.freeze_epochs * steps_per_epoch,
    )
    freeze = min(freeze, max(total - steps_per_epoch, 0))
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
    return optimizer, schedule, freeze


def train(cfg: TrainConfig) -> tuple[Run, dict]:
    """``audio-net train``: one split (train, choose ``best.pt`` on validation, then test and
    baseline once) or, with ``--cv K``, cross-validation (``train_cv``)."""
    if cfg.cv:
        return train_cv(cfg)
    return run_training(AudioTask(), cfg)


class FoldTask(AudioTask):
    """A cross-validation fold: the model at the end of the schedule (the held-out clips are the
    scored ones and choose nothing), scored once on them beside the baseline."""

    final_weights = "last"
    early_stops = False  # the held-out clips are scored: they must not choose anything

    def __init__(self, feats: Features, split, k: int, folds: int) -> None:
        super().__init__(feats, split)
        self.k, self.folds = k, folds

    def title(self, cfg: TrainConfig) -> str:
        return f"audio-net {cfg.model}, fold {self.k}/{self.folds}"

    def summary(self, cfg: TrainConfig, outcome: Outcome, clips: ClipsRun) -> dict:
        net, base = self.scores(outcome, clips, f"fold {self.k} held-out clips")
        info(
            f"fold {self.k}: network {net['clip_accuracy']:.2f}, baseline "
            f"{base['clip_accuracy']:.2f} clip accuracy",
            cfg.quiet,
        )
        return {
            "fold": self.k,
            "clips": len(clips.split["test"]),
            "test_clip_accuracy": net["clip_accuracy"],
            "test_window_accuracy": net["window_accuracy"],
            "test_macro_f1": net["macro_f1"],
            "baseline_clip_accuracy": base["clip_accuracy"],
            "baseline_macro_f1": base["macro_f1"],
            "planned_epochs": clips.planned_epochs,
            "train_seconds": outcome.result["train_seconds"],
        }


class FinalTask(AudioTask):
    """After cross-validation: one network on every clip, for the epochs the folds chose."""

    final_weights = "last"

    def title(self, cfg: TrainConfig) -> str:
        return f"audio-net {cfg.model}, all {len(self.split['train'])} clips"

    def summary(self, cfg: TrainConfig, outcome: Outcome, clips: ClipsRun) -> dict:
        return {
            **common_summary(cfg, outcome, clips.feats),
            "train_seconds": outcome.result["train_seconds"],
            "checkpoint": str(outcome.checkpoint),
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
    """``--cv K``: one network and one baseline per fold, then the final network on every clip,
    each through the shared lifecycle. The folds are runs of their own in ``<run>/folds/foldK``;
    the final network trains into the run folder itself, which is opened (after the clips are
    read, so a refusal leaves nothing) and finished here, with the folds' scores."""
    if cfg.resume is not None:
        raise UserError("--resume continues a single-split run; --cv runs are not resumable")
    clips, feats = load_clip_features(cfg, select_device(cfg.device))  # decoded once, for all
    folds = cv_folds(clips, cfg.cv, cfg.seed)
    initial_backbone(cfg, feats.label_names)  # loads (or fails, offline) before the folder
    run = Run(PROJECT, cfg.out, cfg)
    names = [c.name for c in clips]
    rows, fold_runs = [], []
    for k, fold in enumerate(folds, start=1):
        held = [c.name for c in fold]
        split = {"train": [n for n in names if n not in set(held)], "val": held, "test": held}
        info(
            f"fold {k}/{cfg.cv}: {len(split['train'])} training clips, {len(held)} held out",
            cfg.quiet,
        )
        fold_cfg = dataclasses.replace(cfg, out=run.path / "folds" / f"fold{k}")
        fold_run, row = run_training(FoldTask(feats, split, k, cfg.cv), fold_cfg)
        fold_runs.append(fold_run)
        rows.append(row)
    # --epochs auto: what the (equal-sized) folds resolved it to, known to rank 0
    fold_epochs = int(rows[-1]["planned_epochs"]) if is_main() else 0
    epochs = int(broadcast_object(chosen_epochs(fold_runs, fold_epochs) if is_main() else 0))
    info(f"final model: every clip, {epochs} epochs (chosen by the folds)", cfg.quiet)
    everything = {"train": names, "val": [], "test": []}
    _, final = train_into(FinalTask(feats, everything, epochs), cfg, run)
    if not is_main():
        return run, {}
    summary = cv_summary(cfg, rows, final, (fold_epochs, epochs), len(names))
    run.finish(summary)
    return run, summary


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
