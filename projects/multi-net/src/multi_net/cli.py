"""Command line of multi-net: one console script, subcommands."""

from __future__ import annotations

from collections.abc import Sequence

from shared.config import Command, not_built, run_cli

PROG = "multi-net"
DESCRIPTION = "Multi-modal video search and recommendation on MSR-VTT."

COMMANDS = {
    "train": Command(
        None, not_built(PROG, "train", 6), "contrastive training of the fused video embedding"
    ),
    "evaluate": Command(
        None, not_built(PROG, "evaluate", 6), "text-video retrieval and category precision"
    ),
    "index": Command(
        None, not_built(PROG, "index", 6), "embed a folder of videos into a search index"
    ),
    "recommend": Command(
        None, not_built(PROG, "recommend", 6), "nearest videos to a video or a text query"
    ),
    "bench": Command(
        None, not_built(PROG, "bench", 6), "decode, embed and search throughput as JSON"
    ),
    "data": Command(None, not_built(PROG, "data", 6), "download or check MSR-VTT"),
}


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(PROG, DESCRIPTION, COMMANDS, argv)


if __name__ == "__main__":
    raise SystemExit(main())
