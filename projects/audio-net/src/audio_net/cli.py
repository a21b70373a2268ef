"""Command line of audio-net: one console script, subcommands."""

from __future__ import annotations

from collections.abc import Sequence

from shared.config import Command, not_built, run_cli

PROG = "audio-net"
DESCRIPTION = "GTZAN music-genre classification: log-mel spectrograms and a fine-tuned ResNet18."

COMMANDS = {
    "train": Command(
        None, not_built(PROG, "train", 5), "fine-tune ResNet18 on GTZAN log-mel windows"
    ),
    "evaluate": Command(
        None, not_built(PROG, "evaluate", 5), "window and clip accuracy, macro-F1, figures"
    ),
    "predict": Command(None, not_built(PROG, "predict", 5), "top-3 genres for audio files"),
    "bench": Command(
        None, not_built(PROG, "bench", 5), "featurization and training throughput as JSON"
    ),
    "data": Command(None, not_built(PROG, "data", 5), "download or check GTZAN"),
}


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(PROG, DESCRIPTION, COMMANDS, argv)


if __name__ == "__main__":
    raise SystemExit(main())
