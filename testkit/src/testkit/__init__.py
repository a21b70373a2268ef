"""Test helpers the packages share: the real-sample fixture, test isolation, CLI, README and
browser checks. A package of its own (a member of the workspace, in every package's ``dev`` group)
so that the runtime ``shared`` package ships no pytest code.

Import the fixtures into a project's ``conftest.py``::

    from testkit import isolated, real_data  # noqa: F401
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from shared.paths import repo_root


def real_data_root() -> Path | None:
    """``$DL_TEST_DATA``, else ``../shared/data`` beside the checkout (read-only real samples)."""
    env = os.environ.get("DL_TEST_DATA")
    candidates = [Path(env)] if env else []
    checkout = repo_root(Path(__file__).resolve().parent)  # the workspace this package sits in
    if checkout is not None:
        candidates.append(checkout.parent / "shared" / "data")
    for c in candidates:
        if c.is_dir():
            return c.resolve()
    return None


@pytest.fixture()
def real_data() -> Path:
    root = real_data_root()
    if root is None:
        pytest.skip(
            "real samples not found: set DL_TEST_DATA or place ../shared/data beside the checkout"
        )
    return root


@pytest.fixture(autouse=True, scope="session")
def session_roots(tmp_path_factory):
    """Module- and session-scoped fixtures (a model trained once for several tests) run before
    ``isolated``: their data, cache and runs roots are a session folder too, never the checkout."""
    root = tmp_path_factory.mktemp("session-roots")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DL_DATA_DIR", str(root / "data"))
        mp.setenv("DL_RUNS_DIR", str(root / "runs"))
        yield root


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Every test runs in its own folder with its own data root: nothing lands in the checkout."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DL_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DL_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("MPLBACKEND", "Agg")


def check_cli_help(main: Callable, commands: dict, module: str, prog: str, capsys) -> None:
    """``--help`` lists every subcommand, ``python -m <module> --help`` runs, and no ``--help``
    imports torch, matplotlib or gradio."""
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for name in commands:
        assert name in out
    proc = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and f"usage: {prog}" in proc.stdout
    check_help_loads_no_torch(module, commands, Path.cwd())


def leftovers(root: Path) -> list[Path]:
    """Half-written files under ``root``: temporaries of atomic writes."""
    return sorted(p for p in Path(root).rglob(".*.tmp"))


def assert_clean_failure(
    main: Callable,
    argv: list[str],
    capsys,
    message: str,
    *,
    code: int = 2,
    root: Path | None = None,
) -> str:
    """``main(argv)`` exits with ``code`` and ONE line on stderr naming the problem, no traceback,
    and (with ``root``) no temporaries left under ``root``. Returns that line."""
    got = main([str(a) for a in argv])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert got == code, f"exit {got}, not {code}: {err}"
    assert "Traceback" not in err, err
    errors = [line for line in lines if ": error: " in line]
    assert len(errors) == 1, f"expected one error line, got: {err}"
    assert message in errors[0], f"{message!r} not in {errors[0]!r}"
    if root is not None:
        assert leftovers(root) == [], leftovers(root)
    return errors[0]


def check_export_folder_refusals(main: Callable, argv: list, tmp: Path, capsys) -> None:
    """``main([*argv, "--out", X])`` refuses, before any work and writing nothing, an ``--out``
    that is a symbolic link (to a full or an empty folder), a folder holding a file, or a file."""
    full = tmp / "system-folder"
    full.mkdir()
    (full / "keep.txt").write_text("mine")
    empty = tmp / "empty-folder"
    empty.mkdir()
    a_file = tmp / "a-file"
    a_file.write_text("mine")
    (tmp / "to-full").symlink_to(full)
    (tmp / "to-empty").symlink_to(empty)
    cases = [
        (tmp / "to-full", "is a symbolic link"),
        (tmp / "to-empty", "is a symbolic link"),
        (full, "not an empty folder"),
        (a_file, "is a file, not a folder"),
    ]
    for out, message in cases:
        assert_clean_failure(main, [*argv, "--out", out], capsys, message, root=tmp)
    assert [p.name for p in full.iterdir()] == ["keep.txt"] and not any(empty.iterdir())
    assert a_file.read_text() == "mine" and (full / "keep.txt").read_text() == "mine"


def sigterm_when(
    argv: list[str], ready: Path, *, cwd: Path, timeout: float = 900.0
) -> subprocess.CompletedProcess:
    """Run ``python -m argv...`` and send it SIGTERM once ``ready`` exists (training has begun),
    as ``timeout`` or ``docker stop`` would. Returns the finished process with its output."""
    import signal
    import time

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", *map(str, argv)],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + timeout
    while not Path(ready).exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            out, err = proc.communicate()
            raise AssertionError(f"{ready} never appeared (exit {proc.returncode}): {err[-2000:]}")
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


class ServedDemo:
    """A ``P demo`` started as a user would (``python -m <module> demo ...`` in a subprocess, on a
    free localhost port); ``url`` once the page is served, ``seconds`` from start to served."""

    def __init__(self, module: str, args: list[str], *, cwd: Path, timeout: float = 900.0) -> None:
        import socket
        import threading
        import time

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
        start = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module, "demo", "--port", str(port), *map(str, args)],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        served = threading.Event()

        def read() -> None:
            for line in self.proc.stdout:
                self.lines.append(line)
                if line.startswith("serving on "):
                    served.set()

        threading.Thread(target=read, daemon=True).start()
        while not served.wait(0.1):
            if self.proc.poll() is not None or time.monotonic() - start > timeout:
                self.stop()
                raise AssertionError(f"demo never served: {''.join(self.lines)[-3000:]}")
        self.seconds = time.monotonic() - start
        self.url = f"http://127.0.0.1:{port}/"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> ServedDemo:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def output(self) -> str:
        return "".join(self.lines)


def raw_call(url: str, api: str, data: str) -> str:
    """Call a Gradio endpoint with a hand-written JSON body (gradio_client refuses to send NaN);
    returns the event stream's text."""
    import json
    import urllib.request

    request = urllib.request.Request(
        f"{url}gradio_api/call/{api}",
        data=('{"data": ' + data + "}").encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=600) as response:
        event = json.loads(response.read())["event_id"]
    with urllib.request.urlopen(f"{url}gradio_api/call/{api}/{event}", timeout=600) as response:
        return response.read().decode()


def demo_client(url: str):
    """A ``gradio_client.Client`` on a served demo (no telemetry, no downloads)."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    from gradio_client import Client

    return Client(url, verbose=False, download_files=False)


def chromium_path() -> str | None:
    """The system's Chromium (Debian's ``chromium`` package; Playwright cannot download its own
    browser offline)."""
    import shutil

    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


BROWSER_TIMEOUT_MS = 600_000


def browser_page(url: str, screenshot_dir: Path | None = None):
    """A context manager giving a Playwright page on ``url`` in headless Chromium; it records
    every request, so a test can assert that nothing left 127.0.0.1. Skips the test (with its
    reason) where no Chromium or Playwright is installed."""
    import contextlib

    chromium = chromium_path()
    if chromium is None:
        pytest.skip("no Chromium installed (apt-get install chromium): browser test skipped")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed: browser test skipped")

    @contextlib.contextmanager
    def opened():
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=chromium, args=["--no-sandbox", "--disable-gpu"]
            )
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 1000})
                page.requests_seen = []
                page.on("request", lambda r: page.requests_seen.append(r.url))
                # generous limits: they catch a hang, they are no speed budget (a busy CI machine
                # can be many times slower than an idle one); tests wait on what the page shows
                page.set_default_timeout(BROWSER_TIMEOUT_MS)
                expect_timeout(BROWSER_TIMEOUT_MS)
                page.goto(url, wait_until="networkidle")
                yield page
            finally:
                browser.close()

    return opened()


def expect_timeout(ms: int) -> None:
    from playwright.sync_api import expect

    expect.set_options(timeout=ms)


def wait_for_images(page) -> None:
    """Wait until every image on the page has loaded (before a screenshot or reading a figure)."""
    page.wait_for_function("() => [...document.images].every(i => i.complete && i.naturalWidth)")


def offsite_requests(page, url: str) -> list[str]:
    """Requests the page made to anything but the demo's own server (data: and blob: aside)."""
    return [u for u in page.requests_seen if not u.startswith((url.rstrip("/"), "data:", "blob:"))]


def screenshot_dir(tmp_path: Path) -> Path:
    """Where browser tests save screenshots: ``$DL_SCREENSHOTS`` (e.g. docs/screenshots, to
    refresh the README's), else the test's own folder."""
    folder = Path(os.environ.get("DL_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def sigterm_then_resume(main: Callable, module: str, argv: list, out: Path, capsys) -> int:
    """The SIGTERM contract of a trainer, as a user meets it: ``python -m module argv --quiet``
    (``argv`` ending in ``--out out``) gets SIGTERM once ``out/metrics.csv`` exists; it must exit
    143 with one line "stopped by SIGTERM: saved last.pt at step N", no traceback, and ``last.pt``
    at step N. Then ``main(argv --resume latest --max-minutes 0.05)`` must say it resumed at step
    N and log steps past N. Returns N."""
    import re

    from shared.checkpoint import load_checkpoint

    argv = [str(a) for a in argv]
    proc = sigterm_when([module, *argv, "--quiet"], Path(out) / "metrics.csv", cwd=Path(out).parent)
    assert proc.returncode == 143, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    message = proc.stderr.strip().splitlines()[-1]
    found = re.fullmatch(r"[\w-]+: stopped by SIGTERM: saved last.pt at step (\d+)", message)
    assert found, message
    saved = int(found[1])
    state = load_checkpoint(Path(out) / "checkpoints" / "last.pt", project=message.split(":")[0])
    assert state["step"] == saved > 0
    assert main([*argv, "--resume", "latest", "--max-minutes", "0.05"]) == 0
    assert f"at step {saved}" in capsys.readouterr().err
    rows = (Path(out) / "metrics.csv").read_text().splitlines()[1:]
    steps = [int(r.split(",")[0]) for r in rows]
    assert steps == sorted(steps) and steps[-1] > saved, steps
    return saved


def assert_numeric_flags_checked(main: Callable, commands: dict, capsys) -> int:
    """Every int and float flag of every command refuses NaN, infinities and integers beyond 64
    bits when parsed: exit 2 and argparse's one line naming the flag, no traceback. Returns how
    many flags were tried."""
    import dataclasses
    import typing

    from shared.cli import _unwrap_optional

    tried = 0
    for name, cmd in commands.items():
        if cmd.config is None:
            continue
        hints = typing.get_type_hints(cmd.config)
        for f in dataclasses.fields(cmd.config):
            if not f.init or f.metadata.get("positional"):
                continue
            tp, _ = _unwrap_optional(hints[f.name])
            if typing.get_origin(tp) in (list, tuple):
                tp = typing.get_args(tp)[0]
            if tp not in (int, float):
                continue
            flag = "--" + f.name.replace("_", "-")
            bad = ["nan", "inf", "-inf", "1e400"] if tp is float else ["nan", "9" * 25, "1.5"]
            for value in bad:
                with pytest.raises(SystemExit) as exc:
                    main([name, flag, value])
                err = capsys.readouterr().err
                assert exc.value.code == 2, (name, flag, value)
                assert f"argument {flag}" in err and "Traceback" not in err, err
            tried += 1
    return tried


# --- README checks: the commands and links a reader copies must work -----------------------------

FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def shell_blocks(text: str) -> list[list[str]]:
    """The lines of each fenced bash/sh block, backslash continuations joined."""
    blocks = []
    for lang, body in FENCE.findall(text):
        if lang in ("bash", "sh", "shell"):
            blocks.append([line for line in body.replace("\\\n", " ").splitlines() if line.strip()])
    return blocks


def package_argv(line: str, prog: str) -> list[str] | None:
    """The arguments after ``uv run [--package PROG] [--extra E] ... PROG`` on a command line,
    else None (any other command)."""
    import shlex

    tokens = shlex.split(line, comments=True)
    if tokens[:2] != ["uv", "run"]:
        return None
    i, package = 2, None
    while i < len(tokens) and tokens[i].startswith("--"):
        if tokens[i] in ("--package", "--extra", "--with", "--group") and i + 1 < len(tokens):
            package = tokens[i + 1] if tokens[i] == "--package" else package
            i += 2
        else:
            i += 1
    if package == prog and i < len(tokens) and tokens[i] == prog:
        return tokens[i + 1 :]
    return None


def readme_commands(text: str, prog: str) -> list[list[str]]:
    found = []
    for block in shell_blocks(text):
        found += [a for a in (package_argv(line, prog) for line in block) if a is not None]
    return found


def check_readme_commands(text: str, prog: str, description: str, commands: dict) -> int:
    """Every ``uv run --package PROG PROG ...`` command in ``text`` parses with PROG's CLI (flags,
    choices, required flags); an AssertionError names each one that does not. Returns how many."""
    import contextlib
    import io

    from shared.cli import build_parser, check_required

    parser = build_parser(prog, description, commands)
    bad = []
    found = readme_commands(text, prog)
    for argv in found:
        err = io.StringIO()
        try:
            with contextlib.redirect_stderr(err):
                ns = parser.parse_args(argv)
                cmd = commands[ns._command]
                if cmd.config is not None:
                    check_required(parser.command_parsers[ns._command], cmd.config, ns)
        except SystemExit:
            lines = err.getvalue().strip().splitlines() or ["?"]
            bad.append(f"{prog} {' '.join(argv)}: {lines[-1]}")
    assert not bad, "README commands that do not parse:\n" + "\n".join(bad)
    return len(found)


def check_readme_links(readme: Path) -> int:
    """Every relative link and image path in ``readme`` exists. Returns how many were checked."""
    missing, checked = [], 0
    for target in LINK.findall(readme.read_text()):
        if target.startswith(("http://", "https://", "mailto:", "#")):
            continue
        checked += 1
        if not (readme.parent / target.split("#")[0]).exists():
            missing.append(target)
    assert not missing, f"{readme}: links to missing files: {missing}"
    return checked


def section(text: str, heading: str) -> str:
    """The text of the ``## heading`` section (up to the next heading of that level or higher)."""
    m = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |^# |\Z)", text, re.S | re.M)
    assert m, f"no section '## {heading}'"
    return m.group(1)


def python_blocks(text: str) -> list[str]:
    return [body for lang, body in FENCE.findall(text) if lang == "python"]


def run_shell_block(block: list[str], prog: str, main: Callable, data: Path | None = None) -> int:
    """Run a README's shell block as written: each ``PROG ...`` line through ``main`` in the
    current folder, ``$DATA`` set to ``data``; every command must exit 0. Returns how many ran."""
    ran = 0
    for line in block:
        if line.startswith("DATA="):
            assert data is not None, "the block needs the sample data"
            continue
        argv = package_argv(line.replace("$DATA", str(data)), prog)
        assert argv is not None, f"not a {prog} command: {line}"
        if argv[0] == "demo":  # served as a user starts it, its page fetched, then stopped
            check_demo_serves(main.__module__, argv[1:], line)
        else:
            assert main(argv) == 0, f"failed as written: {line}"
        ran += 1
    return ran


def check_demo_serves(module: str, args: list[str], line: str) -> None:
    """``P demo ARGS`` starts, finds its model and serves its page (then it is stopped)."""
    import urllib.request

    with (
        ServedDemo(module, args, cwd=Path.cwd()) as demo,
        urllib.request.urlopen(demo.url, timeout=60) as page,
    ):
        assert page.status == 200, f"{line}: the page answered {page.status}"


def run_offline_block(readme: Path, prog: str, main: Callable, data: Path | None) -> int:
    """Run the README's first shell block (its offline quick start) as written."""
    return run_shell_block(shell_blocks(readme.read_text())[0], prog, main, data)


# --- inference apart from training ------------------------------------------------------------

TRAINING_ONLY = ("shared.training", "matplotlib.pyplot")


def modules_loaded(module: str, argv: list, cwd: Path) -> set[str]:
    """The modules a fresh interpreter has imported after running ``module.main(argv)`` (which
    must succeed): an inference command must not load the training machinery."""
    import json

    code = (
        "import json, sys\n"
        f"from {module} import main\n"
        f"code = main({[str(a) for a in argv]!r})\n"
        "print(json.dumps(sorted(sys.modules)))\n"
        "sys.exit(code)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, timeout=1800
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return set(json.loads(proc.stdout.strip().splitlines()[-1]))


def help_modules(module: str, argv: list, cwd: Path) -> set[str]:
    """The modules a fresh interpreter has imported after ``module.main(argv)`` printed its help
    (argparse exits 0): ``P --help`` and ``P COMMAND --help`` must not import torch."""
    import json

    code = (
        "import contextlib, io, json, sys\n"
        f"from {module} import main\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        f"    main({[str(a) for a in argv]!r})\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return set(json.loads(proc.stdout.strip().splitlines()[-1]))


def check_help_loads_no_torch(module: str, commands: dict, cwd: Path) -> None:
    """``--help`` of the program and of every command answers without importing torch (whose
    import alone takes seconds), matplotlib or gradio."""
    heavy = {"torch", "matplotlib", "gradio"}
    for argv in (["--help"], *([name, "--help"] for name in commands)):
        loaded = {m.split(".")[0] for m in help_modules(module, argv, cwd)}
        assert not loaded & heavy, f"{argv} imported {sorted(loaded & heavy)}"


def check_project_readme(readme: Path, prog: str, description: str, commands: dict) -> None:
    """A project's README: at most 8 KB, every ``uv run --package PROG PROG`` command parses, its
    links and its NOTES.md's exist; and the check itself fails on a flag the CLI does not have."""
    text = readme.read_text()
    assert len(text.encode()) <= 8 * 1024, "a project README stays under 8 KB: move depth to NOTES"
    assert check_readme_commands(text, prog, description, commands) >= 5
    assert check_readme_links(readme) >= 3
    assert check_readme_links(readme.parent / "NOTES.md") >= 1
    made_up = f"```bash\nuv run --package {prog} {prog} train --no-such-flag 3\n```\n"
    with pytest.raises(AssertionError, match="--no-such-flag"):
        check_readme_commands(made_up, prog, description, commands)
