"""One run per folder: a used --out is refused (or replaced with --force), a second writer is
refused while the first holds the folder, and --resume continues its own folder."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from shared.cli import RunConfig
from shared.errors import UserError
from shared.runs import Run


def finished_run(folder):
    run = Run("proj", folder, RunConfig())
    run.log(step=1, train_loss=1.0)
    (run.checkpoints).mkdir()
    (run.checkpoints / "last.pt").write_bytes(b"weights")
    run.finish({"ok": 1})
    return run


def test_a_used_folder_is_refused_and_left_as_it_was(tmp_path):
    folder = tmp_path / "run"
    finished_run(folder)
    before = {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    with pytest.raises(UserError, match=r"already holds a run .*--resume .*--force"):
        Run("proj", folder, RunConfig())
    after = {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    assert after == before


def test_force_replaces_only_the_run_files(tmp_path):
    folder = tmp_path / "run"
    finished_run(folder)
    (folder / "notes.txt").write_text("mine")
    run = Run("proj", folder, RunConfig(force=True))
    assert not (folder / "metrics.csv").exists() and not (folder / "summary.json").exists()
    assert not run.checkpoints.exists()
    assert (folder / "notes.txt").read_text() == "mine"  # not a run file: kept
    run.log(step=1, train_loss=0.5)
    assert (folder / "metrics.csv").read_text().count("\n") == 2  # header + this run's row


def test_resume_continues_its_own_folder(tmp_path):
    folder = tmp_path / "run"
    finished_run(folder)
    run = Run("proj", folder, RunConfig(), resume_from=folder / "checkpoints" / "last.pt")
    assert run.metrics.rows == [{"step": 1, "train_loss": 1.0}]


def test_an_empty_or_new_folder_is_taken(tmp_path):
    (tmp_path / "empty").mkdir()
    assert Run("proj", tmp_path / "empty", RunConfig()).path == tmp_path / "empty"
    assert Run("proj", tmp_path / "new" / "deep", RunConfig()).path.is_dir()


def test_a_second_writer_is_refused_while_the_first_holds_the_folder(tmp_path):
    """Another process that opened the folder (still training) holds its lock: this one is
    refused with one message, and takes the folder once the first has finished."""
    folder = tmp_path / "run"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys
                from shared.cli import RunConfig
                from shared.runs import Run
                run = Run("proj", {str(folder)!r}, RunConfig())
                print("holding", flush=True)
                sys.stdin.readline()
                run.finish({{"ok": 1}})
                """
            ),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "holding"  # waits on the condition, no clock
        resume = folder / "checkpoints" / "last.pt"
        for kwargs in ({}, {"resume_from": resume}, {"force": True}):
            with pytest.raises(UserError, match=r"being written by another run \(pid \d+\)"):
                Run("proj", folder, RunConfig(), **kwargs)
        holder.stdin.write("\n")
        holder.stdin.flush()
        assert holder.wait() == 0
    finally:
        holder.kill()
    assert Run("proj", folder, RunConfig(force=True)).path == folder
