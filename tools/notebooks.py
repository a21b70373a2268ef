"""Refresh or check the projects' walkthrough notebooks.

    uv run --package intro-nn python tools/notebooks.py refresh projects/intro-nn/walkthrough.ipynb
    uv run --package intro-nn python tools/notebooks.py check projects/*/walkthrough.ipynb

``refresh`` re-executes a notebook in place (a fresh kernel in the notebook's folder, the real
samples of ``../shared/data`` or ``$DL_TEST_DATA``), so its committed outputs are the ones its code
produces, and records a digest of its code cells in its metadata. Run it with the notebook's own
project (``--package``), whose modules the notebook imports. ``check`` says, without running
anything, whether each committed notebook is current: digest, execution counts 1, 2, 3, ...,
figures and size (the projects' tests check the same).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from testkit import notebooks


def problems(path: Path) -> list[str]:
    nb = notebooks.read(path)
    found = []
    if notebooks.recorded_digest(nb) != notebooks.code_digest(nb):
        found.append("code cells changed since its outputs were refreshed")
    counts = notebooks.execution_counts(nb)
    if counts != list(range(1, len(counts) + 1)):
        found.append(f"execution counts are {counts}, not 1, 2, 3, ... (edited and not re-run)")
    if notebooks.image_outputs(nb) < 4:
        found.append(f"{notebooks.image_outputs(nb)} figures (at least 4 expected)")
    size = path.stat().st_size
    if size > notebooks.MAX_BYTES:
        found.append(f"{size:,} bytes (at most {notebooks.MAX_BYTES:,})")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=("refresh", "check"))
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--timeout", type=int, default=None, help="seconds per cell (no limit)")
    args = parser.parse_args(argv)
    status = 0
    for path in args.notebooks:
        if not path.is_file():
            print(f"{path}: no such file", file=sys.stderr)
            status = 1
            continue
        if args.action == "refresh":
            t0 = time.perf_counter()
            nb = notebooks.refresh(path, timeout=args.timeout)
            print(
                f"{path}: executed in {time.perf_counter() - t0:.0f} s, "
                f"{notebooks.image_outputs(nb)} figures, {path.stat().st_size:,} bytes"
            )
        for problem in problems(path):
            print(f"{path}: {problem}", file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
