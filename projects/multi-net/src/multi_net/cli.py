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
    TrainConfig,
)
from shared.cli import Command, run_cli

PROG = "multi-net"
DESCRIPTION = (
    "Multi-modal video search and recommendation (MSR-VTT by default, or your own videos with a "
    "video,caption CSV)."
)

COMMANDS = {
    "train": Command(
        TrainConfig,
        "multi_net.train:train_multi",
        "contrastive training of the fused video embedding",
    ),
    "evaluate": Command(
        EvaluateConfig,
        "multi_net.evaluate:evaluate_command",
        "text-video retrieval and category precision",
    ),
    "index": Command(
        IndexConfig, "multi_net.search:index", "embed a folder of videos into a search index"
    ),
    "recommend": Command(
        RecommendConfig,
        "multi_net.search:recommend",
        "nearest videos to a video or a text query",
    ),
    "demo": Command(
        DemoConfig,
        "multi_net.demo:run_demo",
        "search videos by text, browse neighbours: a local web page",
    ),
    "bench": Command(
        BenchConfig, "multi_net.bench:run_bench", "decode, embed and search throughput as JSON"
    ),
    "data": Command(
        DataConfig,
        "multi_net.data:data",
        "download or check MSR-VTT, or write the synthetic benchmark (synth)",
    ),
}


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(PROG, DESCRIPTION, COMMANDS, argv)


if __name__ == "__main__":
    raise SystemExit(main())
