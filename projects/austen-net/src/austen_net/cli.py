"""Command line of austen-net: one console script, subcommands."""

from __future__ import annotations

from collections.abc import Sequence

from shared.config import Command, not_built, run_cli

PROG = "austen-net"
DESCRIPTION = "A decoder-only transformer trained on Jane Austen's eight works."

COMMANDS = {
    "train": Command(
        None, not_built(PROG, "train", 3), "train the transformer on the Austen corpus"
    ),
    "evaluate": Command(
        None,
        not_built(PROG, "evaluate", 3),
        "bits per character on the validation split or given texts",
    ),
    "generate": Command(None, not_built(PROG, "generate", 3), "stream text in Austen's style"),
    "bench": Command(
        None, not_built(PROG, "bench", 3), "training and generation throughput as JSON"
    ),
    "data": Command(None, not_built(PROG, "data", 3), "download or check the corpus"),
}


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(PROG, DESCRIPTION, COMMANDS, argv)


if __name__ == "__main__":
    raise SystemExit(main())
