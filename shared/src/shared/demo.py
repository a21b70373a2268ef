"""Browser demos (``P demo``): finding the model to serve, the frame every demo shares, serving.

Each project builds its own page (`<project>/demo.py`); this module holds what they share:

- ``DemoOptions`` (declared in ``shared.config``): ``--checkpoint PATH | --run DIR``, ``--host``
  (127.0.0.1 unless told), ``--port``.
- ``find_run``: the run to serve, by default the newest run of the project that holds what the demo
  needs; none at all is one message naming the ``train`` command that makes one.
- ``import_gradio``: Gradio with its analytics and version check off (they phone home unless
  ``GRADIO_ANALYTICS_ENABLED=False`` is set before the import) and its upload folder moved into the
  project's cache folder, so nothing is written outside the run and cache folders.
- ``model_card``: title, what the model is, device, checkpoint and the run's summary metrics.
- ``serve``: a free port checked first, no share link, the URL printed, Ctrl-C / SIGTERM stop it.

The page loads nothing from the internet: Gradio's default theme ships its fonts (``LocalFont``).
"""

from __future__ import annotations

import atexit
import json
import os
import re
import shutil
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.checkpoint import checkpoint_in, run_of
from shared.cli import DemoOptions
from shared.errors import UserError
from shared.files import runs_root

SUMMARY_FILE = "summary.json"


@dataclass
class ServedModel:
    """What a demo serves: the run folder, the checkpoint (None where the run holds no single
    checkpoint file, e.g. a loan model) and the run's summary.json (empty if absent)."""

    run: Path
    checkpoint: Path | None
    summary: dict[str, Any]


def read_summary(run: Path) -> dict[str, Any]:
    try:
        summary = json.loads((run / SUMMARY_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return summary if isinstance(summary, dict) else {}


def find_run(
    project: str,
    opts: DemoOptions,
    *,
    train_command: str,
    has: Callable[[Path], bool] = lambda run: checkpoint_in(run) is not None,
) -> ServedModel:
    """The model to serve: ``--checkpoint``, else ``--run``, else the newest run folder at any depth
    under the project's runs root (``runs/<project>/my-sounds/...`` too) for which ``has(run)``
    holds."""
    if opts.checkpoint is not None:
        if not opts.checkpoint.is_file():
            raise UserError(f"--checkpoint {opts.checkpoint}: no such file")
        run = run_of(opts.checkpoint)
        return ServedModel(run, opts.checkpoint, read_summary(run))
    if opts.run is not None:
        if not opts.run.is_dir():
            raise UserError(f"--run {opts.run}: no such folder")
        if not has(opts.run):
            raise UserError(
                f"--run {opts.run} holds no model for this command; make one with '{train_command}'"
            )
        return ServedModel(opts.run, checkpoint_in(opts.run), read_summary(opts.run))
    root = runs_root(project)
    runs = sorted(run_folders(root), key=lambda p: (p.stat().st_mtime, str(p)), reverse=True)
    for run in runs:
        if has(run):
            return ServedModel(run, checkpoint_in(run), read_summary(run))
    raise UserError(
        f"no trained {project} model under {root}: make one with '{train_command}' "
        "(or point at one with --checkpoint PATH / --run DIR)"
    )


def run_folders(root: Path, depth: int = 4) -> list[Path]:
    """The run folders (those holding a ``config.json``) under ``root``, down to ``depth`` levels;
    a run's own subfolders (cross-validation folds) are not listed apart from it."""
    if depth < 0 or not root.is_dir() or root.is_symlink():
        return []
    found: list[Path] = []
    for child in sorted(root.iterdir()):
        if not child.is_dir() or child.is_symlink():
            continue
        if (child / "config.json").is_file():
            found.append(child)
        else:
            found.extend(run_folders(child, depth - 1))
    return found


_server_uploads: list[Path] = []  # this process's upload folder, removed when the server stops


def import_gradio(upload_dir: Path):
    """Gradio, imported with analytics off and uploads kept in a folder of this server's own
    under ``upload_dir`` (removed when the server stops; ``$GRADIO_TEMP_DIR`` overrides it)."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if "GRADIO_TEMP_DIR" not in os.environ:
        upload_dir.mkdir(parents=True, exist_ok=True)
        remove_orphans(upload_dir)
        mine = Path(tempfile.mkdtemp(prefix=f"server-{os.getpid()}-", dir=upload_dir))
        if not _server_uploads:  # also when stopped before serving (SIGTERM while loading)
            atexit.register(remove_uploads)
        _server_uploads.append(mine)
        os.environ["GRADIO_TEMP_DIR"] = str(mine)
    import gradio as gr  # optional: shared's demo extra (and slow: about 3 s)

    return gr


def remove_orphans(upload_dir: Path) -> None:
    """Remove the upload folders of servers that are gone without cleaning up (killed with
    SIGKILL, a machine that lost power): ``server-<pid>-*`` whose process no longer runs."""
    for folder in upload_dir.glob("server-*-*"):
        pid = folder.name.split("-")[1]
        if not pid.isdigit() or not folder.is_dir() or folder.is_symlink():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
        except (PermissionError, OverflowError):  # another user's live process; not a pid
            continue


def remove_uploads() -> None:
    """Remove this server's upload folders (users' files): when it stops, however it stops."""
    while _server_uploads:
        shutil.rmtree(_server_uploads.pop(), ignore_errors=True)


def discard_upload(path: str | Path) -> None:
    """Delete an upload this server refused, at once (a file refused for one client is refused
    for any other that sent the same bytes). Only a file inside this server's upload folders."""
    file = Path(path).resolve()
    if any(file.is_relative_to(folder.resolve()) for folder in _server_uploads):
        file.unlink(missing_ok=True)


UPLOAD_MAX_AGE_S = 600  # an upload nobody classified is removed after 10 minutes


def prune_uploads(max_bytes: int, max_age_s: float = UPLOAD_MAX_AGE_S) -> int:
    """Bound this server's upload folder: files older than ``max_age_s`` go, then the oldest
    until the rest hold at most ``max_bytes``. An upload is NOT deleted when it is read: Gradio
    stores identical uploads at one path, so 30 clients sending one file share it. Returns how
    many files were removed."""
    files = []
    for folder in _server_uploads:
        for path in folder.rglob("*"):
            try:
                if path.is_file() and not path.is_symlink():
                    st = path.stat()
                    files.append((st.st_mtime, st.st_size, path))
            except OSError:
                continue  # removed meanwhile by another request
    files.sort()
    now, total, removed = time.time(), sum(size for _, size, _ in files), 0
    for mtime, size, path in files:
        if now - mtime <= max_age_s and total <= max_bytes:
            break
        path.unlink(missing_ok=True)
        total, removed = total - size, removed + 1
    return removed


def start_upload_pruning(max_bytes: int, every_s: float = 60.0) -> None:
    """Prune the upload folder every ``every_s`` seconds in a daemon thread (uploads never
    classified are bounded too), for the life of the server."""

    def loop() -> None:
        while not _stop_pruning.wait(every_s):
            prune_uploads(max_bytes)

    _stop_pruning.clear()
    threading.Thread(target=loop, name="upload-pruning", daemon=True).start()


_stop_pruning = threading.Event()


def refuse(gr, message: str, debug: bool = False):
    """The error a demo shows in the page for a refused input. The server's terminal gets one
    warning line (the traceback only with ``--debug``): a refusal is not a crash."""
    print(f"warning: refused input: {message}", file=sys.stderr, flush=True)
    return gr.Error(message, print_exception=debug)


def quiet_bounds(debug: bool = False) -> None:
    """Gradio's own checks of an input (a number past the slider's end, NaN where an integer is
    wanted, a choice not among a dropdown's, a file that was never uploaded) raise errors whose
    tracebacks Gradio prints; make each a refusal like ours: a short message in the page, ONE
    warning line in the terminal (the traceback only with ``--debug``), and never a path of the
    server's in either."""
    import gradio as gr  # optional: shared's demo extra (and slow: about 3 s)
    from gradio.blocks import Blocks

    original = getattr(Blocks.preprocess_data, "__wrapped__", Blocks.preprocess_data)

    async def checked(self, *args, **kwargs):
        try:
            return await original(self, *args, **kwargs)
        except gr.Error as exc:
            if getattr(exc, "print_exception", True) is False:
                raise  # already one of our refusals
            raise refuse(gr, input_problem(exc.message), debug) from None
        except Exception as exc:  # Gradio's ComponentProcessingError, a validation error, ...
            raise refuse(gr, input_problem(str(exc)), debug) from None

    checked.__wrapped__ = original
    Blocks.preprocess_data = checked


SERVER_PATH = re.compile(r"(?:[A-Za-z]:)?[/\\][^\s'\"]*[/\\]([^/\\\s'\"]+)")


def input_problem(message: str, limit: int = 200) -> str:
    """One line of an input error for the page and the log: file paths cut to their names (the
    server's folders are nobody's business), at most ``limit`` characters."""
    line = next((x.strip() for x in str(message).splitlines() if x.strip()), "invalid input")
    line = SERVER_PATH.sub(lambda m: m.group(1), line)
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def model_card(
    gr, title: str, about: str, served: ServedModel, device: str, metrics: Iterable[str]
) -> None:
    """A Markdown header: title, what the model is, device, checkpoint, chosen summary metrics."""
    rows = [
        f"| {key} | {_cell(served.summary[key])} |"
        for key in metrics
        if served.summary.get(key) is not None
    ]
    table = (
        "\n".join(["| metric (from summary.json) | value |", "|---|---|", *rows]) if rows else ""
    )
    source = served.checkpoint or served.run
    data = served.summary.get("data")  # which data set the run learned from, where it says
    trained_on = f"**Trained on:** {data}\n\n" if isinstance(data, str) and data else ""
    gr.Markdown(
        f"# {title}\n\n{about}\n\n**Model:** `{source}` &nbsp; **Device:** `{device}`\n\n"
        f"{trained_on}{table}"
    )


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def check_port(host: str, port: int) -> None:
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((host, port))
    except OSError as exc:
        raise UserError(
            f"cannot listen on {host}:{port} ({exc.strerror or exc}): pick another --port or --host"
        ) from exc


def serve(
    app,
    opts: DemoOptions,
    *,
    allowed_paths: Iterable[Path] = (),
    max_file_size: int | str = "1kb",
    max_upload_total: int | None = None,
    js: str | None = None,
) -> int:
    """Serve ``app`` until Ctrl-C or SIGTERM; print its URL first.

    ``allowed_paths``: files (or folders) the page may fetch beside its own outputs; a demo
    passes files. ``max_file_size``: the largest upload accepted (Gradio refuses larger ones
    before they are stored); a page without an upload field keeps the tiny default.
    ``max_upload_total``: the bytes all stored uploads may hold (pruned every minute, oldest
    first, and after 10 minutes regardless). ``js``: a script the page runs when it loads (e.g.
    to pick a drawing tool). Ctrl-C exits 130 and SIGTERM 143 (through ``run_cli``).
    """
    port = opts.port or free_port(opts.host)
    check_port(opts.host, port)
    quiet_bounds(opts.debug)
    app.queue(default_concurrency_limit=2)
    app.launch(
        server_name=opts.host,
        server_port=port,
        share=False,
        inbrowser=False,
        prevent_thread_lock=True,
        quiet=True,
        show_error=True,
        allowed_paths=[str(p) for p in allowed_paths],
        max_file_size=max_file_size,
        footer_links=[],
        js=js,
    )
    shown = "127.0.0.1" if opts.host in ("0.0.0.0", "::") else opts.host
    print(f"serving on http://{shown}:{port}/  (Ctrl-C to stop)", flush=True)
    if max_upload_total is not None:
        start_upload_pruning(max_upload_total)
    try:  # not app.block_thread(): it turns Ctrl-C and SIGTERM into a normal return (exit 0)
        while app.is_running:
            _stop_pruning.wait(0.2)
    finally:
        _stop_pruning.set()
        app.close()
        remove_uploads()
    return 0
