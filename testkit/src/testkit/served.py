"""A folder served over HTTP on 127.0.0.1, for testing download code against real files: the
project's own ``fetch`` (pooch, requests, sha256) runs exactly as it does against the real host,
with the URL pointed here. Loopback only; the server stops when the block ends. ``free_port``: a
port on 127.0.0.1 nothing listens on (a test's own server, a process group's rendezvous)."""

from __future__ import annotations

import contextlib
import functools
import http.server
import socket
import threading
from collections.abc import Iterator
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # no request lines in the test output
        pass


@contextlib.contextmanager
def served_folder(folder: Path) -> Iterator[str]:
    """Serve ``folder`` read-only; yields its base URL (``http://127.0.0.1:PORT/``)."""
    handler = functools.partial(_Quiet, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
