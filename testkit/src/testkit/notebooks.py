"""Walkthrough notebooks: run one (in memory: the executed copy is never written back unless asked),
and read what a committed one says about itself (the digest of its code cells recorded when its
outputs were last refreshed, its execution counts, its figures, its size).

``tools/notebooks.py refresh`` re-executes a notebook in place and records the digest; the
projects' tests execute each notebook and check that the committed copy is current.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from shared.atomic import atomic_path

NOTEBOOK = "walkthrough.ipynb"
MAX_BYTES = 2_000_000  # with its outputs: PNG figures at a sensible DPI stay well under this
METADATA_KEY = "walkthrough"  # nb.metadata["walkthrough"]["code_sha256"]


def read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(str(path), as_version=4)


def code_cells(nb: nbformat.NotebookNode) -> list:
    return [cell for cell in nb.cells if cell.cell_type == "code"]


def code_digest(nb: nbformat.NotebookNode) -> str:
    """sha256 of the code cells' sources, in order (markdown edits do not need a re-run)."""
    digest = hashlib.sha256()
    for cell in code_cells(nb):
        digest.update(cell.source.encode())
        digest.update(b"\0")
    return digest.hexdigest()


def recorded_digest(nb: nbformat.NotebookNode) -> str | None:
    return nb.metadata.get(METADATA_KEY, {}).get("code_sha256")


def execution_counts(nb: nbformat.NotebookNode) -> list[int | None]:
    return [cell.get("execution_count") for cell in code_cells(nb)]


def image_outputs(nb: nbformat.NotebookNode) -> int:
    return sum(
        "image/png" in out.get("data", {}) for cell in code_cells(nb) for out in cell.outputs
    )


def code_text(nb: nbformat.NotebookNode) -> str:
    return "\n".join(cell.source for cell in code_cells(nb))


def kernel_env() -> dict[str, str]:
    """The kernel's environment: the real samples located for it, figures drawn inline."""
    from testkit.fixtures import real_data_root

    env = dict(os.environ)
    env.pop("MPLBACKEND", None)  # CI exports Agg for scripts; a notebook draws inline
    root = real_data_root()
    if root is not None:
        env["DL_TEST_DATA"] = str(root)
    return env


def execute(path: Path, *, timeout: int | None = None) -> nbformat.NotebookNode:
    """Run every cell in a fresh kernel started in the notebook's folder; an error raises
    ``nbclient.exceptions.CellExecutionError`` naming the cell. Returns the executed copy. No
    time limit per cell by default: a busy machine is slower, not wrong (a cell that took 51 s idle
    took minutes beside two busy loops)."""
    nb = read(path)
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        record_timing=False,
        resources={"metadata": {"path": str(Path(path).parent)}},
    )
    client.execute(env=kernel_env())
    return nb


def refresh(path: Path, *, timeout: int | None = None) -> nbformat.NotebookNode:
    """Execute in place: the outputs and the digest of the code that made them are committed."""
    nb = execute(path, timeout=timeout)
    nb.metadata[METADATA_KEY] = {"code_sha256": code_digest(nb)}
    nb.metadata.pop("widgets", None)
    with atomic_path(Path(path)) as tmp:
        nbformat.write(nb, str(tmp))
    return nb
