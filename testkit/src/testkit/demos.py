"""Served demos: a demo command started in a subprocess, waited on until its port answers, and called through its HTTP API."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from testkit.served import free_port


class ServedDemo:
    """A ``P demo`` (or ``command``: ``serve``) started as a user would (``python -m <module> demo
    ...`` in a subprocess, on a free localhost port); ``url`` once it serves, ``seconds`` from
    start to served."""

    def __init__(
        self,
        module: str,
        args: list[str],
        *,
        cwd: Path,
        timeout: float = 900.0,
        command: str = "demo",
    ) -> None:
        import threading
        import time

        port = free_port()
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
        start = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module, command, "--port", str(port), *map(str, args)],
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


def check_demo_serves(module: str, args: list[str], line: str) -> None:
    """``P demo ARGS`` starts, finds its model and serves its page (then it is stopped)."""
    import urllib.request

    with (
        ServedDemo(module, args, cwd=Path.cwd()) as demo,
        urllib.request.urlopen(demo.url, timeout=60) as page,
    ):
        assert page.status == 200, f"{line}: the page answered {page.status}"
