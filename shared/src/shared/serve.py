"""Serving a trained model over HTTP to programs: what every project's ``serve`` command shares
(the ``serve`` extra: FastAPI and uvicorn).

- ``Batcher``: requests wait in a bounded queue and a worker thread answers them together, up to
  ``--max-batch`` in one forward pass, waiting at most ``--max-wait-ms`` for a batch to fill. A
  full queue is refused at once (``QueueFull``: 503 with ``Retry-After``), never a hang.
- ``Metrics``: requests by route and status, a latency histogram, the queue's depth and the
  tokens generated, in Prometheus' text format at ``/metrics``.
- ``create_app``: a FastAPI app with ``/health`` and ``/metrics``, a bound on the body's bytes
  (413), and every refusal a JSON body in OpenAI's error shape (``{"error": {"message", "type",
  "code"}}``), so one client reads every project's errors.
- ``serve_http``: uvicorn on a checked port, the URL printed once it listens. Ctrl-C or SIGTERM: it
  stops accepting, lets what is in flight finish (``stopping(app)`` tells a stream to end), closes
  the app's ``workers`` (what answers behind its routes) and exits 130 or 143 as every command
  does.
- ``served`` and ``load_test``: a project's ``bench --serve``: its own ``serve`` command started
  on a free port, then a fixed count of requests at a given concurrency: throughput, latency
  percentiles, errors and refusals.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.exceptions import HTTPException

from shared.cli import ServeOptions
from shared.demo import check_port, free_port
from shared.device import cpu_facts, device_name, select_device
from shared.errors import UserError
from shared.runs import Run

RETRY_AFTER_S = 1  # what a refused client is told to wait


class QueueFull(Exception):
    """The queue of waiting requests is at ``--max-queue``: answered 503 with Retry-After."""


class Batcher:
    """``run_batch(items) -> results`` (one result per item, in order) called by one worker thread
    on up to ``max_batch`` queued items at a time; ``await batcher(item)`` is that item's result."""

    def __init__(
        self,
        run_batch: Callable[[list[Any]], Sequence[Any]],
        *,
        max_batch: int,
        max_wait_ms: float,
        max_queue: int,
    ) -> None:
        self.run_batch, self.max_batch = run_batch, max_batch
        self.max_wait, self.max_queue = max_wait_ms / 1000, max_queue
        self.pending: collections.deque[tuple[Any, Future]] = collections.deque()
        self.cond = threading.Condition()
        self.closed = False
        self.batches = self.items = 0
        self.thread = threading.Thread(target=self._loop, name="batcher", daemon=True)
        self.thread.start()

    @property
    def depth(self) -> int:
        return len(self.pending)

    def submit(self, item: Any) -> Future:
        future: Future = Future()
        with self.cond:
            if self.closed or len(self.pending) >= self.max_queue:
                raise QueueFull(f"{len(self.pending)} requests are waiting")
            self.pending.append((item, future))
            self.cond.notify()
        return future

    async def __call__(self, item: Any) -> Any:
        return await asyncio.wrap_future(self.submit(item))

    def _next_batch(self) -> list[tuple[Any, Future]]:
        with self.cond:
            while not self.pending and not self.closed:
                self.cond.wait()
            deadline = time.monotonic() + self.max_wait
            while len(self.pending) < self.max_batch and not self.closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.cond.wait(left)
            n = min(self.max_batch, len(self.pending))
            return [self.pending.popleft() for _ in range(n)]

    def _loop(self) -> None:
        while True:
            batch = self._next_batch()
            if not batch:
                return  # closed and drained
            try:
                results = self.run_batch([item for item, _ in batch])
            except Exception as exc:  # the batch's requests fail (500), the server goes on
                for _, future in batch:
                    future.set_exception(exc)
                continue
            self.batches, self.items = self.batches + 1, self.items + len(batch)
            for (_, future), result in zip(batch, results, strict=True):
                future.set_result(result)

    def close(self) -> None:
        """Answer what is queued, then stop the worker."""
        with self.cond:
            self.closed = True
            self.cond.notify_all()
        self.thread.join()


class Metrics:
    """What ``/metrics`` reports, in Prometheus' text format (names prefixed by the project)."""

    BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
    RATE_WINDOW_S = 10.0

    def __init__(self, project: str) -> None:
        self.prefix = project.replace("-", "_")
        self.lock = threading.Lock()
        self.requests: collections.Counter = collections.Counter()
        self.latency: dict[str, list[float]] = {}  # route -> bucket counts, sum, count
        self.tokens = 0
        self.recent: collections.deque[tuple[float, int]] = collections.deque()
        self.gauges: dict[str, tuple[str, Callable[[], float]]] = {}

    def gauge(self, name: str, help: str, read: Callable[[], float]) -> None:
        self.gauges[name] = (help, read)

    def observe(self, route: str, status: int, seconds: float) -> None:
        with self.lock:
            self.requests[(route, status)] += 1
            h = self.latency.setdefault(route, [0.0] * (len(self.BUCKETS) + 2))
            for i, le in enumerate(self.BUCKETS):
                h[i] += seconds <= le
            h[-2] += seconds
            h[-1] += 1

    def add_tokens(self, n: int) -> None:
        now = time.monotonic()
        with self.lock:
            self.tokens += n
            self.recent.append((now, n))
            while self.recent and self.recent[0][0] < now - self.RATE_WINDOW_S:
                self.recent.popleft()

    def tokens_per_s(self) -> float:
        with self.lock:
            now = time.monotonic()
            return sum(n for t, n in self.recent if t >= now - self.RATE_WINDOW_S) / (
                self.RATE_WINDOW_S
            )

    def text(self) -> str:
        p, lines = self.prefix, []

        def head(name: str, kind: str, help: str) -> None:
            lines.extend([f"# HELP {p}_{name} {help}", f"# TYPE {p}_{name} {kind}"])

        with self.lock:
            head("requests_total", "counter", "Requests answered, by route and status.")
            for (route, status), n in sorted(self.requests.items()):
                lines.append(f'{p}_requests_total{{route="{route}",status="{status}"}} {n}')
            head("request_seconds", "histogram", "Seconds to answer (to the first byte).")
            for route, h in sorted(self.latency.items()):
                for le, n in zip((*map(str, self.BUCKETS), "+Inf"), (*h[:-2], h[-1]), strict=True):
                    lines.append(f'{p}_request_seconds_bucket{{route="{route}",le="{le}"}} {n:g}')
                lines.append(f'{p}_request_seconds_sum{{route="{route}"}} {h[-2]:.6f}')
                lines.append(f'{p}_request_seconds_count{{route="{route}"}} {h[-1]:g}')
            head("generated_tokens_total", "counter", "Tokens generated.")
            lines.append(f"{p}_generated_tokens_total {self.tokens}")
        head("tokens_per_second", "gauge", "Tokens generated a second over the last 10 s.")
        lines.append(f"{p}_tokens_per_second {self.tokens_per_s():.3f}")
        for name, (help, read) in sorted(self.gauges.items()):
            head(name, "gauge", help)
            lines.append(f"{p}_{name} {read():g}")
        return "\n".join(lines) + "\n"


def error_body(status: int, message: str) -> dict:
    kind = "invalid_request_error" if status < 500 else "server_error"
    return {"error": {"message": message, "type": kind, "code": status}}


class BodyLimit:
    """ASGI middleware: a request body over ``max_bytes`` is answered 413 (declared or streamed)."""

    def __init__(self, app, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length", b"0")
        if not declared.isdigit() or int(declared) > self.max_bytes:
            return await self.refuse(send)
        seen, started = 0, False

        async def limited():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise _TooLarge
            return message

        async def sending(message):
            nonlocal started
            started = True
            await send(message)

        try:
            await self.app(scope, limited, sending)
        except _TooLarge:
            if not started:
                await self.refuse(send)

    async def refuse(self, send) -> None:
        body = json.dumps(error_body(413, f"the body is over {self.max_bytes} bytes")).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    pass


def create_app(project: str, info: dict, metrics: Metrics, *, max_body_bytes: int):
    """The app every project's server starts from: ``GET /health`` (``info``: what is served),
    ``GET /metrics``, JSON errors, the body bound, each answer counted in ``metrics``."""

    app = FastAPI(title=project, docs_url=None, redoc_url=None)
    app.state.metrics = metrics
    app.state.workers = []  # what answers behind the routes (a Batcher): closed after serving

    def refusal(status: int, message: str, headers: dict | None = None) -> JSONResponse:
        return JSONResponse(error_body(status, message), status_code=status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        problems = [
            f"{'.'.join(str(x) for x in e.get('loc', ()) if x != 'body') or 'body'}: {e['msg']}"
            for e in exc.errors()[:3]
        ]
        return refusal(400, "; ".join(problems))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        return refusal(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(UserError)
    async def user_error(request: Request, exc: UserError):
        return refusal(400, str(exc))

    @app.exception_handler(Exception)
    async def failed(request: Request, exc: Exception):  # a bug or memory: JSON, never a hang
        return refusal(500, f"the server failed on this request ({type(exc).__name__}: {exc})")

    @app.exception_handler(QueueFull)
    async def queue_full(request: Request, exc: QueueFull):
        return refusal(503, f"busy: {exc}; retry", {"Retry-After": str(RETRY_AFTER_S)})

    @app.middleware("http")
    async def account(request: Request, call_next):
        t0 = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        metrics.observe(
            getattr(route, "path", "other"), response.status_code, time.perf_counter() - t0
        )
        return response

    @app.get("/health")
    async def health():
        return {"status": "ok", **info}

    @app.get("/metrics")
    async def metrics_text():
        return PlainTextResponse(metrics.text(), media_type="text/plain; version=0.0.4")

    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    return app


def stopping(app) -> bool:
    """True once the server was told to stop (SIGTERM, Ctrl-C): a stream ends at its next token."""
    server = getattr(app.state, "server", None)
    return bool(server is not None and server.should_exit)


def serve_http(app, opts: ServeOptions) -> int:
    """Serve ``app`` until Ctrl-C or SIGTERM; print its URL once it listens."""
    port = opts.port or free_port(opts.host)
    check_port(opts.host, port)
    config = uvicorn.Config(
        app, host=opts.host, port=port, log_level="warning", timeout_graceful_shutdown=30
    )
    server = uvicorn.Server(config)
    app.state.server = server
    shown = "127.0.0.1" if opts.host in ("0.0.0.0", "::") else opts.host

    def announce() -> None:
        while not server.started and not server.should_exit:
            time.sleep(0.05)
        if server.started:
            print(f"serving on http://{shown}:{port}/  (Ctrl-C to stop)", flush=True)

    threading.Thread(target=announce, daemon=True).start()
    try:
        server.run()  # uvicorn raises the signal that stopped it again once it is done: exit 143
    finally:
        for worker in app.state.workers:  # what is still queued is answered, then each stops
            worker.close()
    return 0


@contextlib.contextmanager
def served(module: str, args: Sequence[str]) -> Iterator[str]:
    """``python -m <module> serve --port 0 <args>`` in a process of its own (as a user starts it;
    its clients, in this process, do not share its interpreter); yields its URL once it listens,
    and stops it with SIGTERM after."""
    port = free_port("127.0.0.1")
    argv = [sys.executable, "-m", module, "serve", "--port", str(port), *map(str, args)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, text=True)
    try:
        for line in proc.stdout:
            if line.startswith("serving on "):
                break
        else:
            raise UserError(f"the server stopped before it listened (exit {proc.wait()})")
        yield f"http://127.0.0.1:{port}"
    finally:
        if proc.poll() is None:
            proc.terminate()
        proc.wait()


def load_test(
    url: str, request: Callable[[int], tuple[str, Any]], count: int, concurrency: int
) -> dict:
    """``count`` requests (``request(i)``: a path and its JSON body, or bytes to send) from ``concurrency`` clients
    at once, each sending its next as soon as its last is answered. Latencies in ms; 503s are
    ``rejected`` (the queue was full), anything else not 200 an ``error``."""
    latencies: list[float] = []
    statuses: collections.Counter = collections.Counter()
    tokens, lock, issued = [0], threading.Lock(), iter(range(count))

    def client() -> None:
        with httpx.Client(base_url=url, timeout=600) as http:
            while True:
                with lock:
                    i = next(issued, None)
                if i is None:
                    return
                path, body = request(i)
                t0 = time.perf_counter()
                try:
                    if isinstance(body, bytes):  # a file as the body (audio, an image)
                        r = http.post(path, content=body)
                    else:
                        r = http.post(path, json=body)
                    status = r.status_code
                    used = r.json().get("usage", {}) if status == 200 else {}
                except httpx.HTTPError:
                    status, used = 0, {}
                with lock:
                    latencies.append((time.perf_counter() - t0) * 1000)
                    statuses[status] += 1
                    tokens[0] += int(used.get("completion_tokens", 0))

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - t0
    ordered = sorted(latencies)

    def pct(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)

    return {
        "requests": count,
        "concurrency": concurrency,
        "seconds": round(seconds, 3),
        "requests_per_s": round(count / seconds, 2),
        "p50_ms": pct(0.50),
        "p95_ms": pct(0.95),
        "p99_ms": pct(0.99),
        "ok": statuses[200],
        "rejected": statuses[503],
        "errors": count - statuses[200] - statuses[503],
        "completion_tokens": tokens[0],
        "tokens_per_s": round(tokens[0] / seconds, 1),
    }


def bench_serve(
    project: str,
    cfg: Any,
    args: Sequence[Any],
    request: Callable[[int], tuple[str, Any]],
    facts: dict | None = None,
    concurrencies: Sequence[int] = (1, 4, 16),
) -> int:
    """A project's ``bench --serve`` (``cfg``: its ``BenchConfig``): ``<project> serve`` started
    (``served``) and warmed (twice the highest concurrency's requests at once: each batch shape's
    first pass is slower, once), then ``load_test`` at each concurrency; keys
    ``serve_<figure>_c<concurrency>`` (and, for generated tokens, tokens/s over all streams and
    per stream, and the batching speedup at 4), written as the run's summary and printed."""
    where = select_device(cfg.device)
    out: dict[str, Any] = {"device": device_name(where)}
    out |= {**(cpu_facts() if where.type == "cpu" else {}), **(facts or {})}
    out["serve_requests"] = count = cfg.serve_requests
    module = project.replace("-", "_") + ".cli"
    with served(module, [*args, "--device", cfg.device]) as url:
        load_test(url, request, 2 * max(concurrencies), max(concurrencies))
        for c in concurrencies:
            r = load_test(url, request, count, c)
            for key in ("requests_per_s", "p50_ms", "p95_ms", "p99_ms", "errors", "rejected"):
                out[f"serve_{key}_c{c}"] = r[key]
            if r["completion_tokens"]:  # a stream's own pace: its tokens over its median latency
                out[f"serve_tokens_per_s_c{c}"] = r["tokens_per_s"]
                each = r["completion_tokens"] / count / (r["p50_ms"] / 1000)
                out[f"serve_tokens_per_s_per_stream_c{c}"] = round(each, 1)
    if "serve_tokens_per_s_c1" in out and 4 in concurrencies:
        speedup = out["serve_tokens_per_s_c4"] / out["serve_tokens_per_s_c1"]
        out["serve_batching_speedup_c4"] = round(speedup, 2)
    Run(project, cfg.out, cfg).finish(out)
    return 0
