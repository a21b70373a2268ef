"""Command line of multi-net: one console script; each subcommand names its function.

A function is imported only when its command runs: ``--help``, and a flag refused while parsing,
answer in a fraction of a second without importing torch (about 1.5 s on its own).
"""

from __future__ import annotations

from collections.abc import Sequence

from multi_net.config import (
    BenchConfig,
    DataConfig,
    DemoConfig,
    EvaluateConfig,
    IndexConfig,
    RecommendConfig,
    ServeConfig,
    TrainConfig,
)
from shared.cli import Command, run_cli

PROG = "multi-net"
DESCRIPTION = (
    "Multi-modal video search and recommendation (MSR-VTT by default, or your own videos with a "
    "video,caption CSV)."
)


def train_command(cfg: TrainConfig):
    # imported when the command runs: --help needs no torch
    from multi_net.train import train

    return train(cfg)


def evaluate_command(cfg: EvaluateConfig):
    # imported when the command runs: --help needs no torch
    from multi_net.evaluate import evaluate_command

    return evaluate_command(cfg)


def index_command(cfg: IndexConfig):
    # imported when the command runs: --help needs no torch
    from multi_net.catalogue import index

    return index(cfg)


def recommend_command(cfg: RecommendConfig):
    # imported when the command runs: --help needs no torch
    from multi_net.catalogue import recommend

    return recommend(cfg)


def demo_command(cfg: DemoConfig):
    # imported when the command runs: --help needs no torch
    from multi_net.demo import run_demo

    return run_demo(cfg)


def bench_command(cfg: BenchConfig):
    # imported when the command runs: --help needs no torch
    if cfg.serve:
        from multi_net.serve import serve_bench  # the serve extra (FastAPI), for --serve only

        return serve_bench(cfg)
    if cfg.store:
        from multi_net.store_bench import store_bench  # slow: torch

        return store_bench(cfg)
    from multi_net.bench import run_bench  # slow: torch

    return run_bench(cfg)


def data_command(cfg: DataConfig):
    # imported when the command runs: --help needs no torch
    from multi_net.data import data

    return data(cfg)


def serve_command(cfg: ServeConfig):
    # imported when the command runs: --help needs no torch
    from multi_net.serve import build_api
    from shared.serve import serve_http

    return serve_http(build_api(cfg), cfg)


COMMANDS = {
    "train": Command(
        TrainConfig,
        train_command,
        "contrastive training of the fused video embedding",
    ),
    "evaluate": Command(
        EvaluateConfig,
        evaluate_command,
        "text-video retrieval and category precision",
    ),
    "index": Command(IndexConfig, index_command, "embed a folder of videos into a search index"),
    "recommend": Command(
        RecommendConfig,
        recommend_command,
        "nearest videos to a video or a text query",
    ),
    "demo": Command(
        DemoConfig,
        demo_command,
        "search videos by text, browse neighbours: a local web page",
    ),
    "serve": Command(
        ServeConfig, serve_command, "search and recommend over HTTP for programs (batched)"
    ),
    "bench": Command(BenchConfig, bench_command, "decode, embed and search throughput as JSON"),
    "data": Command(
        DataConfig,
        data_command,
        "download or check MSR-VTT, or write the synthetic benchmark (synth)",
    ),
}


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(PROG, DESCRIPTION, COMMANDS, argv)


if __name__ == "__main__":
    raise SystemExit(main())
