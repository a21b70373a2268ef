"""Command line of audio-net: one console script, subcommands.

Each command imports its own modules inside its function: ``--help``, and a flag refused while
parsing, answer in a fraction of a second without importing torch (about 2.5 s on its own).
"""

from __future__ import annotations

from collections.abc import Sequence

from audio_net.config import (
    BenchConfig,
    DataConfig,
    DemoConfig,
    EvaluateConfig,
    ExportConfig,
    PredictConfig,
    TrainConfig,
)
from shared.cli import Command, run_cli
from shared.errors import UserError

PROG = "audio-net"
DESCRIPTION = (
    "Sound classification (GTZAN genres by default, or your own label folders): log-mel "
    "spectrograms and a fine-tuned ResNet18."
)


def train(cfg: TrainConfig) -> int:
    from audio_net.train import train_audio, train_cv

    run, summary = (train_cv if cfg.cv else train_audio)(cfg)
    run.finish(summary)
    return 0


def evaluate(cfg: EvaluateConfig) -> int:
    from audio_net.baseline import baseline_report
    from audio_net.dataset import find_gtzan, labels_of
    from audio_net.evaluate import report
    from audio_net.features import load_features
    from audio_net.inference import load_classifier
    from audio_net.train import PROJECT, cache_dir
    from shared.device import select_device
    from shared.precision import autocast, resolve_precision
    from shared.runs import Run

    device = select_device(cfg.device)
    model, params, labels, state = load_classifier(cfg.checkpoint, device)
    clips = find_gtzan(cfg.data_dir, download=cfg.download, quiet=cfg.quiet)
    if labels_of(clips) != list(labels):
        raise UserError(
            f"the data folder's labels ({', '.join(labels_of(clips))}) are not the checkpoint's "
            f"({', '.join(labels)}): point --data-dir at the data the model was trained on"
        )
    feats, _ = load_features(clips, params, cache_dir(cfg), device, quiet=cfg.quiet)
    names = [n for n in state["split"][cfg.split] if n in set(feats.names)]
    if not names:
        raise UserError(
            f"none of the checkpoint's {cfg.split} clips were found under the data folder"
            + (
                " (a --cv final model has no held-out clips)"
                if not state["split"][cfg.split]
                else ""
            )
        )
    run = Run(PROJECT, cfg.out, cfg)
    precision = resolve_precision(cfg.precision, device)
    result = report(
        model,
        feats,
        names,
        run,
        device,
        lambda: autocast(device, precision),
        title=f"{cfg.split} clips",
    )
    base = baseline_report(
        feats, state["split"]["train"], names, run.figure("baseline_confusion_matrix.png")
    )
    run.finish(
        {
            "checkpoint": str(cfg.checkpoint),
            "split": cfg.split,
            **result,
            "baseline_clip_accuracy": base["clip_accuracy"],
            "baseline_macro_f1": base["macro_f1"],
        }
    )
    return 0


def predict(cfg: PredictConfig) -> int:
    from audio_net.predict import predict as run_predict

    return run_predict(cfg)


def export(cfg: ExportConfig) -> int:
    import json

    from audio_net.export import export_classifier

    print(json.dumps(export_classifier(cfg.checkpoint, cfg.out, cfg.quiet)))
    return 0


def bench(cfg: BenchConfig) -> int:
    from audio_net.bench import run_bench

    return run_bench(cfg)


def data(cfg: DataConfig) -> int:
    from audio_net.dataset import find_gtzan
    from shared.progress import info

    clips = find_gtzan(cfg.data_dir, download=cfg.action == "download", quiet=cfg.quiet)
    info(f"GTZAN: {len(clips)} clips in {clips[0].path.parent.parent}")
    return 0


def demo(cfg: DemoConfig) -> int:
    from audio_net.demo import run_demo

    return run_demo(cfg, cfg.max_seconds)


COMMANDS = {
    "train": Command(
        TrainConfig, train, "train a classifier on log-mel windows (GTZAN or your label folders)"
    ),
    "evaluate": Command(EvaluateConfig, evaluate, "window and clip accuracy, macro-F1, figures"),
    "predict": Command(PredictConfig, predict, "top-3 labels for audio files, as JSON"),
    "export": Command(
        ExportConfig, export, "the classifier as ONNX, with its labels and preprocessing"
    ),
    "bench": Command(BenchConfig, bench, "featurization and training throughput as JSON"),
    "data": Command(DataConfig, data, "download or check GTZAN"),
    "demo": Command(DemoConfig, demo, "upload or record music, see its genre: a local web page"),
}


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(PROG, DESCRIPTION, COMMANDS, argv)


if __name__ == "__main__":
    raise SystemExit(main())
