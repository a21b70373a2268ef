"""Run folders: config.json, metrics.csv, summary.json, checkpoints/ and figures/.

Every train/evaluate/bench command writes one. The command prints the folder, then the summary as
one JSON object on the LAST line of stdout so scripts can read it with ``tail -n 1``.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from pathlib import Path
from typing import Any

from shared.atomic import write_json, write_text
from shared.config import to_jsonable
from shared.distributed import broadcast_object, is_main


def runs_root(project: str) -> Path:
    return Path("runs") / project


def default_run_dir(project: str) -> Path:
    base = runs_root(project) / time.strftime("%Y%m%d-%H%M%S")
    path, n = base, 1
    while path.exists():
        path = base.with_name(f"{base.name}-{n}")
        n += 1
    return path


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
    ) -> None:
        if out is not None:
            path = Path(out)
        elif resume_from is not None and resume_from.parent.name == "checkpoints":
            path = resume_from.parent.parent
        else:
            path = default_run_dir(project)
        path = Path(broadcast_object(str(path)))
        self.project = project
        self.path = path
        self.enabled = is_main()
        self.checkpoints = path / "checkpoints"
        self.figures = path / "figures"
        if self.enabled:
            for d in (self.path, self.checkpoints, self.figures):
                d.mkdir(parents=True, exist_ok=True)
        self.metrics = MetricsLog(path / "metrics.csv", enabled=self.enabled)
        if config is not None and self.enabled:
            write_json(path / "config.json", to_jsonable(config))

    def figure(self, name: str) -> Path:
        return self.figures / name

    def log(self, **row: Any) -> None:
        self.metrics.append(row)

    def finish(self, summary: dict[str, Any]) -> dict[str, Any]:
        """Write summary.json, print the folder and then the summary as the last stdout line."""
        summary = to_jsonable(summary)
        if not self.enabled:
            return summary
        write_json(self.path / "summary.json", summary)
        print(f"run folder: {self.path}", flush=True)
        print(json.dumps(summary), flush=True)
        return summary
