"""Command line of intro-nn: one console script, subcommands."""

from __future__ import annotations

from collections.abc import Sequence

from shared.config import Command, not_built, run_cli

PROG = "intro-nn"
DESCRIPTION = "Neural networks from scikit-learn to PyTorch: LendingClub loans and MNIST."

COMMANDS = {
    "train": Command(
        None, not_built(PROG, "train", 4), "train the loan MLP (loan) or the MNIST MLP/CNN (mnist)"
    ),
    "predict": Command(None, not_built(PROG, "predict", 4), "default probabilities for loan rows"),
    "bench": Command(
        None, not_built(PROG, "bench", 4), "MNIST epoch time and loan CV time as JSON"
    ),
    "data": Command(None, not_built(PROG, "data", 4), "download or check the data sets"),
}


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(PROG, DESCRIPTION, COMMANDS, argv)


if __name__ == "__main__":
    raise SystemExit(main())
