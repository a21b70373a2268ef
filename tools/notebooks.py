"""Run, refresh or check the projects' walkthrough notebooks.

    uv run --package intro-nn python tools/notebooks.py run projects/intro-nn/walkthrough.ipynb
    uv run --package intro-nn python tools/notebooks.py refresh projects/intro-nn/walkthrough.ipynb
    uv run --package intro-nn python tools/notebooks.py check projects/*/walkthrough.ipynb

``run`` executes a notebook top to bottom in a fresh kernel (in the notebook's folder, reading the
data root as the CLIs do: ``$DL_DATA_DIR``, else ``data/``; what is missing there is downloaded)
and writes the executed copy under the data root's cache, never over the committed one. ``refresh``
(for maintainers) executes the same way and writes the outputs INTO the committed notebook, with a
digest of its code cells and one of everything the outputs follow from (its code, the project's
and shared's source, uv.lock, the data root's sample folders) in its metadata: while the second
matches, the tests check the committed run instead of executing it again. Both say which cell runs (cell n of N), keep the kernel's
start-up noise out of the terminal, and stop at a failing cell with its one-line error. Run them
with the notebook's own project (``--package``), whose modules the notebook imports. ``check``
says, without running anything, whether each committed notebook is current: digest, execution
counts 1, 2, 3, ..., figures and size (the projects' tests check the same).

To work through a lesson yourself, open it in JupyterLab (each project's README):

    uv run --package intro-nn --extra lab jupyter lab projects/intro-nn/walkthrough.ipynb
"""

from __future__ import annotations

import argparse
import stat
import sys
import time
from pathlib import Path

from testkit import notebooks

MAX_READ_BYTES = 8 * notebooks.MAX_BYTES  # a bound on what is read at all (check reports size)


def unreadable(path: Path) -> str | None:
    """Why ``path`` cannot be a notebook to read, or None: missing, a folder, a device or FIFO
    (``/dev/zero`` would be read forever, a FIFO would block), too big, or not a notebook."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return "no such file"
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    if stat.S_ISDIR(st.st_mode):
        return "a folder, not a notebook"
    if not stat.S_ISREG(st.st_mode):
        return "a device, FIFO or socket, not a notebook"
    if st.st_size > MAX_READ_BYTES:
        return f"{st.st_size:,} bytes: too big to be a walkthrough notebook"
    try:
        nb = notebooks.read(path)
        notebooks.nbformat.validate(nb)
    except Exception as exc:  # nbformat raises JSON, validation and type errors of its own
        first = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0][:160]
        return f"not a readable notebook ({exc.__class__.__name__}: {first})"
    return None


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


def executed_copy(path: Path) -> Path:
    """Where ``run`` writes its executed copy: ``<data root>/cache/<project>/walkthrough/``."""
    from shared.files import cache_root

    return cache_root(path.resolve().parent.name) / "walkthrough" / path.name


def execute(path: Path, action: str, timeout: int | None) -> bool:
    """Run ``path`` (``run``: into its copy; ``refresh``: in place), saying cell n of N; on a
    failing cell, its one-line error and where the kernel's own output went. True if it ran."""
    import tempfile

    from nbclient.exceptions import CellExecutionError

    from shared.files import atomic_path

    t0, current = time.perf_counter(), [0]

    def on_cell(n: int, total: int) -> None:
        current[0] = n
        print(f"{path}: cell {n} of {total} ({time.perf_counter() - t0:.0f} s)", flush=True)

    with tempfile.TemporaryFile("w+") as kernel_log:
        try:
            if action == "refresh":
                nb = notebooks.refresh(
                    path, timeout=timeout, on_cell=on_cell, kernel_stderr=kernel_log
                )
                dest = path
            else:
                nb = notebooks.execute(
                    path, timeout=timeout, on_cell=on_cell, kernel_stderr=kernel_log
                )
                dest = executed_copy(path)
                dest.parent.mkdir(parents=True, exist_ok=True)
                with atomic_path(dest) as tmp:
                    notebooks.nbformat.write(nb, str(tmp))
        except CellExecutionError as exc:
            print(
                f"{path}: stopped at cell {current[0]}: {exc.ename}: {exc.evalue}", file=sys.stderr
            )
            return False
        except Exception as exc:  # the kernel died or never started: its own words say why
            kernel_log.seek(0)
            tail = kernel_log.read()[-2000:]
            print(
                f"{path}: the kernel failed ({exc.__class__.__name__}: {exc})\n{tail}",
                file=sys.stderr,
            )
            return False
    print(
        f"{path}: executed in {time.perf_counter() - t0:.0f} s, {notebooks.image_outputs(nb)} "
        f"figures, written to {dest} ({dest.stat().st_size:,} bytes)"
    )
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=("run", "refresh", "check"))
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--timeout", type=int, default=None, help="seconds per cell (no limit)")
    args = parser.parse_args(argv)
    status = 0
    for path in args.notebooks:
        why = unreadable(path)
        if why is not None:
            print(f"{path}: {why}", file=sys.stderr)
            status = 1
            continue
        if args.action in ("run", "refresh") and not execute(path, args.action, args.timeout):
            status = 1
            continue
        if args.action == "run":
            continue
        for problem in problems(path):
            print(f"{path}: {problem}", file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
