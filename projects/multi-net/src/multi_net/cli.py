"""Command line of multi-net: one console script, subcommands.

Each command imports its own modules inside its function: ``--help``, and a flag refused while
parsing, answer in a fraction of a second without importing torch (about 2.5 s on its own).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

from multi_net.config import (
    BenchConfig,
    DataConfig,
    DemoConfig,
    EvaluateConfig,
    IndexConfig,
    RecommendConfig,
    TrainConfig,
)
from shared.cli import Command, run_cli
from shared.errors import UserError

PROG = "multi-net"
DESCRIPTION = (
    "Multi-modal video search and recommendation (MSR-VTT by default, or your own videos with a "
    "video,caption CSV)."
)


def train(cfg: TrainConfig) -> int:
    from multi_net.train import train_multi

    run, summary = train_multi(cfg)
    run.finish(summary)
    return 0


def evaluate(cfg: EvaluateConfig) -> int:
    from multi_net.dataset import check_splits, locate, standard_split
    from multi_net.evaluation import evaluate_pairs
    from multi_net.inference import PROJECT, TrainedModel
    from multi_net.train import cache_dir
    from shared.checkpoint import run_data_settings
    from shared.device import select_device
    from shared.runs import Run

    device = select_device(cfg.device)
    trained = TrainedModel(cfg.checkpoint, device)
    trained_with = trained.state["config"]
    fields = ("videos", "annotations", "data_dir")
    cfg = run_data_settings(cfg, trained_with, fields, quiet=cfg.quiet)
    data = locate(cfg.videos, cfg.annotations, cfg.data_dir, download=cfg.download, quiet=cfg.quiet)
    splits = standard_split(
        data,
        trained_with.get("train_split", "9k"),
        trained_with.get("seed", 0),
        trained_with.get("val_videos", 500),
    )
    if cfg.split == "all":
        pairs = [(v, data.ann.captions[v][0]) for v in data.videos if data.ann.captions.get(v)]
    else:
        check_splits(splits)
        pairs = splits.test if cfg.split == "test" else splits.val
    if len({v for v, _ in pairs}) < 2:
        hint = "" if cfg.split == "all" else ": --split all scores every captioned video"
        raise UserError(f"fewer than 2 {cfg.split} videos with captions on disk{hint}")
    feats = trained.features({v: data.videos[v] for v, _ in pairs}, cache_dir(cfg), cfg.quiet)
    metrics = evaluate_pairs(
        trained.model,
        feats,
        pairs,
        trained.clip,
        trained.tokenizer,
        device,
        categories=data.ann.categories,
        attributes=data.ann.attributes,
    )
    run = Run(PROJECT, cfg.out, cfg)
    held_out = {} if cfg.split != "all" else {"held_out": False}  # training videos are scored too
    run.finish({"checkpoint": str(cfg.checkpoint), "split": cfg.split, **held_out, **metrics})
    return 0


def index(cfg: IndexConfig) -> int:
    from multi_net.annotations import category_name, load_annotations
    from multi_net.inference import PROJECT, TrainedModel
    from multi_net.search import build_index
    from multi_net.train import cache_dir
    from shared.checkpoint import run_data_settings
    from shared.device import select_device
    from shared.paths import runs_root
    from shared.runs import check_writable_file

    if cfg.out is None:  # under the runs root, where `demo` finds the newest index
        stamp = time.strftime("%Y%m%d-%H%M%S")
        cfg.out = runs_root(PROJECT) / "indexes" / f"{Path(cfg.videos).name}-{stamp}.pt"
    check_writable_file(cfg.out, "--out")  # before any clip is embedded
    trained = TrainedModel(cfg.checkpoint, select_device(cfg.device))
    # no --annotations: the training run's own, so that hits show captions and categories
    cfg = run_data_settings(cfg, trained.state["config"], ("annotations",), quiet=cfg.quiet)
    metadata: dict[str, dict] = {}
    if cfg.annotations:
        ann = load_annotations(cfg.annotations)
        for vid in set(ann.captions) | set(ann.categories):
            metadata[vid] = {
                "category": category_name(ann.categories.get(vid), ann),
                "caption": (ann.captions.get(vid) or [None])[0],
                **({"attributes": ann.attributes[vid]} if vid in ann.attributes else {}),
            }
    print(
        json.dumps(build_index(trained, cfg.videos, cfg.out, cache_dir(cfg), metadata, cfg.quiet))
    )
    return 0


def recommend(cfg: RecommendConfig) -> int:
    from shared.paths import require_file

    require_file(cfg.index, "--index")  # before importing torch and open_clip (seconds)
    require_file(cfg.checkpoint, "--checkpoint")
    from multi_net.search import recommend as run_recommend

    print(json.dumps(run_recommend(cfg)))
    return 0


def bench(cfg: BenchConfig) -> int:
    from multi_net.bench import run_bench

    return run_bench(cfg)


def data(cfg: DataConfig) -> int:
    from multi_net.dataset import download_msrvtt, find_videos_dir, msrvtt_root
    from shared.progress import info

    if cfg.action == "synth":
        from multi_net.synth import DEFAULT_SMALL_VIDEOS, DEFAULT_VIDEOS, generate
        from shared.paths import data_root
        from shared.runs import check_writable_dir

        if cfg.out is None:  # under the data root, never in the current folder or the checkout
            cfg.out = data_root(cfg.data_dir) / "synth"
            info(f"writing the benchmark into {cfg.out} (--out DIR for another folder)", cfg.quiet)
        check_writable_dir(cfg.out, "--out")
        print(
            json.dumps(
                generate(
                    cfg.out,
                    cfg.videos
                    if cfg.videos is not None
                    else (DEFAULT_SMALL_VIDEOS if cfg.small else DEFAULT_VIDEOS),
                    cfg.seed,
                    cfg.quiet,
                    cfg.small,
                    cfg.force,
                )
            )
        )
        return 0
    if cfg.action == "download":
        root = download_msrvtt(cfg.data_dir, cfg.quiet)
    else:
        root = msrvtt_root(cfg.data_dir)
    videos = find_videos_dir(root) or find_videos_dir(root / "MSRVTT")
    info(f"MSR-VTT under {root}: videos in {videos}")
    return 0 if videos else 2


def demo(cfg: DemoConfig) -> int:
    from multi_net.demo import run_demo

    return run_demo(cfg, cfg.index, cfg.videos)


COMMANDS = {
    "train": Command(TrainConfig, train, "contrastive training of the fused video embedding"),
    "evaluate": Command(EvaluateConfig, evaluate, "text-video retrieval and category precision"),
    "index": Command(IndexConfig, index, "embed a folder of videos into a search index"),
    "recommend": Command(RecommendConfig, recommend, "nearest videos to a video or a text query"),
    "demo": Command(DemoConfig, demo, "search videos by text, browse neighbours: a local web page"),
    "bench": Command(BenchConfig, bench, "decode, embed and search throughput as JSON"),
    "data": Command(
        DataConfig, data, "download or check MSR-VTT, or write the synthetic benchmark (synth)"
    ),
}


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(PROG, DESCRIPTION, COMMANDS, argv)


if __name__ == "__main__":
    raise SystemExit(main())
