"""Run folders: config.json, metrics.csv, summary.json, checkpoints/ and figures/.

Checkpoints are written atomically and tagged with the project and the format version
(``save_checkpoint``); ``CheckpointManager`` keeps ``last.pt`` (every save) and ``best.pt`` (when
the monitored metric improves). ``shared.checkpoint`` reads them back, strictly.

Every train/evaluate/bench command writes one. The command prints the folder, then the summary as
one JSON object on the LAST line of stdout so scripts can read it with ``tail -n 1``. A new folder
is created exclusively (two runs started in the same second get two folders), and an ``--out``
that cannot be written is refused before any work starts.

One run per folder: a run holds a lock on ``<run>/.lock`` while it writes (a second writer, or a
``--resume`` of a run still training, is one message), and an ``--out`` that already holds a run's
files is refused unless the run continues it (``--resume``) or ``--force`` replaces those files.
"""

from __future__ import annotations

import csv
import fcntl
import io
import json
import logging
import math
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from shared.device import broadcast_object, is_main
from shared.errors import UserError
from shared.extras import require
from shared.files import (
    atomic_path,
    runs_root,
    stale_temporaries,
    to_jsonable,
    write_json,
    write_text,
)

log = logging.getLogger(__name__)

FORMAT_VERSION = 1  # of the checkpoints written here; shared.checkpoint reads this one


def new_run_dir(project: str) -> Path:
    """Create and return ``<runs root>/<YYYYmmdd-HHMMSS>[-N]``: ``mkdir`` without ``exist_ok`` is
    atomic, so of two processes racing for a name one gets it and the other takes the next."""
    root = runs_root(project)
    root.mkdir(parents=True, exist_ok=True)
    base = time.strftime("%Y%m%d-%H%M%S")
    for n in range(10_000):
        path = root / (base if n == 0 else f"{base}-{n}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise UserError(f"could not find a free run folder name under {root}")


# the names a run writes into its folder: a folder holding any of them is a used run folder
RUN_FILES = (
    "config.json",
    "metrics.csv",
    "summary.json",
    "checkpoints",
    "figures",
    "tensorboard",
    "folds",
)
LOCK_FILE = ".lock"
_held_locks: dict[Path, int] = {}  # run folder -> the open file descriptor holding its lock


def run_files_in(path: Path) -> list[str]:
    """The run files (see ``RUN_FILES``) already in ``path``; an empty folder has none."""
    return [name for name in RUN_FILES if (path / name).exists()]


def lock_run_dir(path: Path) -> None:
    """Take the lock of run folder ``path`` for this process (kept until :func:`unlock_run_dir`
    or the process ends: the kernel drops an ``flock`` with its holder, so a killed run leaves no
    stale lock). Another process holding it is a ``UserError``."""
    key = path.resolve()
    if key in _held_locks:
        return
    fd = os.open(key / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode("ascii", "replace").strip() or "another process"
        os.close(fd)
        raise UserError(
            f"{path} is being written by another run (pid {holder}); wait for it to finish, "
            "or give this run another --out"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    _held_locks[key] = fd


def unlock_run_dir(path: Path) -> None:
    fd = _held_locks.pop(path.resolve(), None)
    if fd is not None:
        os.close(fd)


def tidy_interrupted(run_dir: Path) -> int:
    """Remove the temporaries a killed save left in ``run_dir/checkpoints`` (``.last.pt.*.tmp``)
    when no other process is writing the folder (its lock is free), before a resume is checked:
    a refused resume leaves none either. Returns how many were removed."""
    run_dir = Path(run_dir)
    if not (run_dir / "checkpoints").is_dir() or run_dir.resolve() in _held_locks:
        return 0
    try:
        lock_run_dir(run_dir)
    except (UserError, OSError):
        return 0  # being written (its temporaries are live), or not ours to lock
    try:
        stale = stale_temporaries(run_dir / "checkpoints", ("last.pt", "best.pt"))
        for tmp in stale:
            tmp.unlink(missing_ok=True)
        return len(stale)
    finally:
        unlock_run_dir(run_dir)


def claim_run_dir(path: Path, *, continuing: bool, force: bool) -> None:
    """Lock ``path`` and make sure this run does not mix with an earlier one: a folder holding a
    run's files is refused unless this run continues it (``--resume``) or ``force`` removes them
    (only those names: anything else a user keeps there stays)."""
    lock_run_dir(path)
    used = [] if continuing else run_files_in(path)
    if not used:
        return
    if not force:
        unlock_run_dir(path)
        raise UserError(
            f"--out {path} already holds a run ({', '.join(used)}): continue it with "
            f"--resume {path}, choose another --out, or pass --force to replace that run"
        )
    for name in used:
        target = path / name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        else:
            target.unlink()


def check_writable_dir(path: str | Path, flag: str = "--out") -> None:
    """Refuse, before any work, an output folder that is a file or lies in an unwritable place.

    Nothing is created: the nearest existing folder at or above ``path`` must take a file (a probe
    file is written and removed, which also catches read-only mounts that ``os.access`` misses).
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{flag} {path} is a file, not a folder")
    existing = path
    while not existing.exists():
        if existing.is_symlink():  # exists() is False for a link to nowhere, or to itself
            raise UserError(
                f"{flag} {path}: {existing} is a symbolic link that leads nowhere (a loop, or a "
                "target that is gone)"
            )
        existing = existing.parent
    if not existing.is_dir():
        raise UserError(f"{flag} {path}: {existing} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        raise UserError(
            f"{flag} {path}: cannot write in {existing} ({(exc.strerror or str(exc)).lower()})"
        ) from exc


def check_writable_file(path: str | Path, flag: str) -> None:
    """The same for an output FILE: not a folder, and its folder writable."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{flag} {path} is a folder; give a file name (e.g. {path / 'index.pt'})")
    check_writable_dir(path.parent, flag)


class MetricsLog:
    """Rows of metrics kept in memory and rewritten atomically to a CSV (columns = union of keys)."""

    def __init__(self, path: Path, enabled: bool = True) -> None:
        self.path = path
        self.enabled = enabled
        self.rows: list[dict[str, Any]] = []
        if path.is_file():
            with open(path, newline="", encoding="utf-8") as fh:
                self.rows = [
                    {k: _parse(v) for k, v in row.items() if v != ""} for row in csv.DictReader(fh)
                ]

    def append(self, row: dict[str, Any]) -> None:
        self.rows.append({k: _plain(v) for k, v in row.items()})
        self.flush()

    def truncate_after(self, key: str, value: float) -> None:
        """Drop rows with ``row[key] > value`` (a resumed run repeats them)."""
        self.rows = [r for r in self.rows if r.get(key, -math.inf) <= value]
        self.flush()

    def flush(self) -> None:
        if not self.enabled:
            return
        columns: list[str] = []
        for row in self.rows:
            columns.extend(k for k in row if k not in columns)
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns)
        writer.writeheader()
        writer.writerows(self.rows)
        write_text(self.path, buf.getvalue())


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        value = value.item()
    return value


def _parse(text: str) -> Any:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


class Run:
    """One run folder. ``out`` wins; else a resumed checkpoint's folder; else a new timestamped one.

    Under torchrun rank 0 picks the folder and writes everything; other ranks only know its path.
    """

    def __init__(
        self,
        project: str,
        out: str | Path | None = None,
        config: Any = None,
        *,
        resume_from: Path | None = None,
        force: bool | None = None,
    ) -> None:
        self.tensorboard = bool(getattr(config, "tensorboard", False))
        if self.tensorboard:  # checked before any folder exists
            require(("tensorboard",), "shared", "tensorboard", "--tensorboard")
        if out is not None:
            path = Path(out)
        elif resume_from is not None and resume_from.parent.name == "checkpoints":
            path = resume_from.parent.parent
        else:
            path = new_run_dir(project) if is_main() else None
        self.project = project
        self.config = config
        self.enabled = is_main()
        if self.enabled:
            path = Path(path)
            if out is not None:
                check_writable_dir(path)
            path.mkdir(parents=True, exist_ok=True)
            continuing = resume_from is not None and _same_dir(resume_from.parent.parent, path)
            if force is None:
                force = bool(getattr(config, "force", False))
            claim_run_dir(path, continuing=continuing, force=force)
            (path / "figures").mkdir(exist_ok=True)  # checkpoints/: made by the first checkpoint
        # only once rank 0 has claimed the folder: another rank that went on at once would make
        # checkpoints/ in it first, and rank 0 would refuse its own run as "already holds a run"
        path = Path(broadcast_object(str(path)))
        self.path = path
        self.checkpoints = path / "checkpoints"
        self.figures = path / "figures"
        self.metrics = MetricsLog(path / "metrics.csv", enabled=self.enabled)
        self._writer = None
        self._purge_step: int | None = None
        if config is not None and self.enabled:
            write_json(path / "config.json", to_jsonable(config))

    def figure(self, name: str) -> Path:
        return self.figures / name

    def log(self, **row: Any) -> None:
        """One row of metrics: into metrics.csv, and with ``--tensorboard`` into event files under
        ``<run>/tensorboard`` (scalars by name, at the row's ``step``)."""
        self.metrics.append(row)
        if self.tensorboard and self.enabled and "step" in row:
            writer = self._tensorboard_writer()
            for key, value in row.items():
                numeric = isinstance(value, (int, float)) and math.isfinite(value)
                if numeric and key not in ("step", "epoch"):
                    writer.add_scalar(key, value, int(row["step"]))
            writer.flush()

    def truncate_after(self, step: int) -> None:
        """A resumed run drops its rows (and TensorBoard events) past the step it resumes at."""
        self.metrics.truncate_after("step", step)
        self._purge_step = step + 1

    def _tensorboard_writer(self):
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter  # optional: --tensorboard only

            self._writer = SummaryWriter(
                log_dir=str(self.path / "tensorboard"), purge_step=self._purge_step
            )
        return self._writer

    def finish(self, summary: dict[str, Any]) -> dict[str, Any]:
        """Write summary.json, print the folder and then the summary as the last stdout line."""
        summary = to_jsonable(summary)
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if not self.enabled:
            return summary
        write_json(self.path / "summary.json", summary)
        unlock_run_dir(self.path)
        print(f"run folder: {self.path}", flush=True)
        print(json.dumps(summary, allow_nan=False), flush=True)
        return summary


def _same_dir(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def refuse_non_finite(weights: dict[str, Any], what: str) -> None:
    """Refuse weights holding NaN or infinite values: a run that diverged, or a tampered file.
    Said before anything is written or trained on, so a finite ``last.pt`` is never replaced."""
    for name, value in weights.items():
        if (
            isinstance(value, torch.Tensor)
            and value.is_floating_point()
            and not bool(torch.isfinite(value).all())
        ):
            raise UserError(
                f"{what} hold NaN or infinite values ({name}): the run diverged or the file was "
                "altered; no checkpoint was written from them (a lower --lr may help)"
            )


def save_checkpoint(path: str | Path, payload: dict[str, Any], *, project: str) -> Path:
    """Write ``payload`` (plus the project tag) to ``path`` atomically."""
    path = Path(path)
    data = {"project": project, "format_version": FORMAT_VERSION, **payload}
    with atomic_path(path) as tmp:
        torch.save(data, tmp)
    return path


class CheckpointManager:
    """Keeps ``last.pt`` (every save) and ``best.pt`` (when the ``monitor`` metric improves).

    Temporaries that a killed save left behind (``kill -9`` mid-write) are removed when the
    manager is made, that is when a run starts or resumes.
    """

    NAMES = ("last.pt", "best.pt")

    def __init__(
        self,
        directory: str | Path,
        *,
        project: str,
        monitor: str = "val_loss",
        mode: str = "min",
        quiet: bool = True,
    ) -> None:
        if mode not in ("min", "max"):
            raise ValueError("mode must be 'min' or 'max'")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.project = project
        self.monitor = monitor
        self.mode = mode
        self.best: float | None = None
        self.best_step: int | None = None  # the step of best.pt (early stopping counts from it)
        stale = stale_temporaries(self.directory, self.NAMES)
        for tmp in stale:
            tmp.unlink(missing_ok=True)
        if stale:
            log.info(f"removed {len(stale)} unfinished checkpoint file(s) of an interrupted save")

    @property
    def last_path(self) -> Path:
        return self.directory / "last.pt"

    @property
    def best_path(self) -> Path:
        return self.directory / "best.pt"

    def is_better(self, metric: float) -> bool:
        if self.best is None:
            return True
        return metric < self.best if self.mode == "min" else metric > self.best

    def save(self, payload: dict[str, Any], metrics: dict[str, float] | None = None) -> bool:
        """Save ``last.pt``; also ``best.pt`` if ``metrics[monitor]`` improved. Returns whether it
        did. Weights that are not finite are refused first: a diverged run never replaces the
        last finite ``last.pt``."""
        refuse_non_finite(payload.get("model", {}), f"the weights at step {payload.get('step')}")
        metric = (metrics or {}).get(self.monitor)
        improved = metric is not None and metric == metric and self.is_better(metric)
        if improved:
            self.best = metric
            self.best_step = payload.get("step")
        payload = {**payload, "best_metric": self.best, "best_step": self.best_step}
        save_checkpoint(self.last_path, payload, project=self.project)
        if improved:
            save_checkpoint(self.best_path, payload, project=self.project)
        return improved
