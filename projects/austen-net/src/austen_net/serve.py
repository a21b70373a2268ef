"""``austen-net serve``: the model behind OpenAI's completions API (``POST /v1/completions``, plain
or streamed as server-sent events, and ``GET /v1/models``), so the ``openai`` client, LangChain
and every load tester talk to it as they would to OpenAI.

Concurrent requests share one decode step: the ``Engine`` keeps up to ``--max-batch`` sequences
(a request asks for ``n``), each in a row of one key/value cache of its own. A new sequence joins
at the next step: its prompt runs through the model alone (writing its row), then it decodes
with the others, each row at its own position (model.py's attention takes a position per row);
it leaves when it has its tokens or meets a stop string, and the last row moves into its place.
A sequence draws its tokens as ``generate`` does (the same sampling, the same sliding window), so
one request at temperature 0, or with a ``seed``, gets ``generate``'s text for that prompt.
"""

from __future__ import annotations

import asyncio
import collections
import json
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field

import torch
from fastapi import HTTPException
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field

from austen_net import PROJECT
from austen_net.config import BenchConfig, ServeConfig
from austen_net.decode import attention_dtype
from austen_net.generate import StreamDecoder
from austen_net.inference import load_model
from austen_net.sampling import sample
from austen_net.weights import choose_weights
from shared.demo import find_run
from shared.device import select_device
from shared.serve import (
    Metrics,
    QueueFull,
    bench_serve,
    create_app,
    error_body,
    stopping,
)

MODEL_ID = PROJECT
MAX_PROMPT_CHARS = 32_000
MAX_STOPS, MAX_STOP_CHARS = 4, 64


class Rows:
    """The engine's keys and values: ``rows`` sequences, each the model's whole context long."""

    def __init__(self, cfg, rows: int, device, dtype) -> None:
        shape = (rows, cfg.kv_heads, cfg.block_size, cfg.head_dim)
        self.k = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(cfg.n_layer)]
        self.v = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(cfg.n_layer)]

    def view(self, rows: slice) -> RowsView:
        return RowsView([t[rows] for t in self.k], [t[rows] for t in self.v])

    def move(self, src: int, dst: int) -> None:
        for t in (*self.k, *self.v):
            t[dst].copy_(t[src])


@dataclass
class RowsView:
    """Some rows of ``Rows``, written where the model writes a cache (decode.KVCache's method): at
    positions ``pos`` (T,) for every row, or at one position per row (B, 1)."""

    k: list[torch.Tensor]
    v: list[torch.Tensor]

    def write(self, layer: int, k: torch.Tensor, v: torch.Tensor, pos: torch.Tensor):
        if pos.dim() == 1:
            self.k[layer].index_copy_(2, pos, k.to(self.k[layer].dtype))
            self.v[layer].index_copy_(2, pos, v.to(self.v[layer].dtype))
        else:
            rows = torch.arange(len(pos), device=pos.device)
            self.k[layer][rows, :, pos[:, 0]] = k[:, :, 0].to(self.k[layer].dtype)
            self.v[layer][rows, :, pos[:, 0]] = v[:, :, 0].to(self.v[layer].dtype)
        return self.k[layer], self.v[layer]


class Events:
    """A request's events, from the engine's thread to the event loop that answers it."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop, self.queue = loop, asyncio.Queue()

    def put(self, event: tuple) -> None:
        self.loop.call_soon_threadsafe(self.queue.put_nowait, event)


@dataclass
class Sequence:
    """One completion being written (a request with ``n`` > 1 is several)."""

    context: list[int]
    max_tokens: int
    temperature: float
    top_p: float | None
    top_k: int | None
    stop: list[str]
    generator: torch.Generator
    index: int
    events: Events
    decoder: StreamDecoder
    produced: int = 0
    filled: bool = False  # its row holds its context's keys and values
    text: str = ""
    sent: int = 0
    finish: str | None = None
    cancelled: bool = False
    extra: dict = field(default_factory=dict)


class Engine:
    """The decode loop, in a thread of its own: admits waiting sequences at each step (up to
    ``max_batch`` at once), runs one batched decode step, hands each sequence's text on."""

    def __init__(self, model, tok, device, *, max_batch: int, max_queue: int, metrics, stop):
        self.model, self.tok, self.device = model, tok, device
        self.max_batch, self.max_queue, self.metrics, self.stop = (
            max_batch,
            max_queue,
            metrics,
            stop,
        )
        dtype = attention_dtype(torch.empty(0, device=device), model.tok_emb.weight.dtype)
        self.rows = Rows(model.cfg, max_batch, device, dtype)
        self.active: list[Sequence] = []
        self.pending: collections.deque[Sequence] = collections.deque()
        self.cond = threading.Condition()
        self.closed = False
        self.steps = 0
        self.thread = threading.Thread(target=self.loop, name="decode", daemon=True)
        self.thread.start()

    def submit(self, seqs: list[Sequence]) -> None:
        with self.cond:
            if self.closed or len(self.pending) + len(seqs) > self.max_queue:
                raise QueueFull(f"{len(self.pending)} sequences are waiting")
            self.pending.extend(seqs)
            self.cond.notify()

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()
        self.thread.join()

    @torch.no_grad()
    def loop(self) -> None:
        self.model.eval()
        while True:
            with self.cond:
                while not self.pending and not self.active and not self.closed:
                    self.cond.wait()
                if self.closed and not self.pending and not self.active:
                    return
                while self.pending and len(self.active) < self.max_batch:
                    self.active.append(self.pending.popleft())
            if self.closed or self.stop():  # shutting down: every stream ends now, cleanly
                with self.cond:
                    waiting = list(self.pending)
                    self.pending.clear()
                for seq in self.active + waiting:
                    self.finish(seq, "stop")
                self.retire()
                continue
            try:
                self.step()
            except Exception as exc:  # a failed step fails its sequences (500), never hangs them
                print(f"{PROJECT} serve: a decode step failed: {exc!r}", file=sys.stderr)
                for seq in self.active:
                    seq.finish = "error"
                    seq.events.put(("error", seq.index, f"generation failed: {exc}"))
                self.active.clear()

    def step(self) -> None:
        """New sequences' prompts (each alone into its row), then one batched decode step."""
        for i, seq in enumerate(self.active):
            if not seq.filled:  # a new sequence (or one whose window slid): its prompt
                self.prefill(seq, i)
        self.retire()
        if self.active:
            self.decode()
            self.retire()

    def prefill(self, seq: Sequence, row: int) -> None:
        block = self.model.cfg.block_size
        idx = torch.tensor([seq.context[-block:]], device=self.device)
        hidden = self.model(idx, cache=self.rows.view(slice(row, row + 1)), head=False)
        seq.filled = True
        self.emit(seq, self.model.head(hidden[:, -1]))

    def decode(self) -> None:
        n = len(self.active)
        tokens = torch.tensor([[s.context[-1]] for s in self.active], device=self.device)
        pos = torch.tensor([[len(s.context) - 1] for s in self.active], device=self.device)
        logits, _ = self.model(tokens, pos=pos, cache=self.rows.view(slice(0, n)))
        self.steps += 1
        for i, seq in enumerate(self.active):
            self.emit(seq, logits[i : i + 1, -1])

    def emit(self, seq: Sequence, logits: torch.Tensor) -> None:
        """The next token of ``seq`` drawn from ``logits`` (1, vocab), as ``generate`` draws it."""
        if seq.cancelled:
            return self.finish(seq, "stop")
        token = int(sample(logits.float(), seq.temperature, seq.top_k, seq.top_p, seq.generator))
        seq.produced += 1
        self.metrics.add_tokens(1)
        seq.context.append(token)
        block = self.model.cfg.block_size
        if len(seq.context) > block:  # the window slides as generate's does
            seq.context, seq.filled = seq.context[-(block // 2) :], False
        seq.text += seq.decoder.push(token)
        if self.stopped_by_string(seq):
            return self.finish(seq, "stop")
        if seq.produced >= seq.max_tokens:
            return self.finish(seq, "length")
        # a stop string may still be forming: hold back as many characters as it could share
        held = max((len(s) for s in seq.stop), default=1) - 1
        self.send(seq, len(seq.text) - held)

    def stopped_by_string(self, seq: Sequence) -> bool:
        cuts = [i for s in seq.stop if (i := seq.text.find(s)) >= 0]
        if cuts:
            seq.text = seq.text[: min(cuts)]
        return bool(cuts)

    def send(self, seq: Sequence, upto: int) -> None:
        if upto > seq.sent:
            seq.events.put(("text", seq.index, seq.text[seq.sent : upto]))
            seq.sent = upto

    def finish(self, seq: Sequence, reason: str) -> None:
        if seq.finish is not None:
            return
        if reason == "length":
            seq.text += seq.decoder.flush()
        seq.finish = reason
        self.send(seq, len(seq.text))
        seq.events.put(("done", seq.index, reason, seq.produced))

    def retire(self) -> None:
        """Finished sequences leave; the last row moves into each freed place."""
        i = 0
        while i < len(self.active):
            if self.active[i].finish is None:
                i += 1
                continue
            last = len(self.active) - 1
            if i != last:
                self.rows.move(last, i)
            self.active[i] = self.active[last]
            self.active.pop()


class Completion(BaseModel):
    """OpenAI's completion request (``top_k`` beside it, as vLLM takes it)."""

    model: str = MODEL_ID
    prompt: str | list[str] = ""
    max_tokens: int = Field(16, ge=1)
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    top_k: int | None = Field(None, ge=1)
    n: int = Field(1, ge=1)
    stop: str | list[str] | None = None
    stream: bool = False
    seed: int | None = None


def checked(req: Completion, cfg: ServeConfig) -> tuple[str, list[str]]:
    """The request's one prompt and its stop strings, refused (4xx) past this server's bounds."""
    prompts = [req.prompt] if isinstance(req.prompt, str) else req.prompt
    if len(prompts) != 1:
        raise HTTPException(400, "prompt: give one prompt (a string)")
    if len(prompts[0]) > MAX_PROMPT_CHARS:
        raise HTTPException(400, f"prompt: over {MAX_PROMPT_CHARS} characters")
    if req.model != MODEL_ID:
        raise HTTPException(404, f"model {req.model!r}: this server has {MODEL_ID!r}")
    if req.max_tokens > cfg.max_tokens:
        raise HTTPException(400, f"max_tokens: at most {cfg.max_tokens} on this server")
    if req.n > cfg.max_batch:
        raise HTTPException(400, f"n: at most {cfg.max_batch} (--max-batch) on this server")
    stops = [req.stop] if isinstance(req.stop, str) else list(req.stop or [])
    if len(stops) > MAX_STOPS or any(not s or len(s) > MAX_STOP_CHARS for s in stops):
        raise HTTPException(400, f"stop: up to {MAX_STOPS} strings of 1-{MAX_STOP_CHARS} chars")
    return prompts[0], stops


def sequences(req: Completion, ids: list[int], stops: list[str], tok, events: Events):
    """The request's ``n`` sequences, each with its own generator (``seed + i``, or random)."""
    seqs = []
    for i in range(req.n):
        generator = torch.Generator(device="cpu")
        if req.seed is not None:
            generator.manual_seed(req.seed + i)
        else:
            generator.seed()
        top_p = req.top_p if req.top_p < 1.0 else None
        seqs.append(
            Sequence(list(ids), req.max_tokens, req.temperature, top_p, req.top_k, stops,
                     generator, i, events, StreamDecoder(tok))
        )  # fmt: skip
    return seqs


def body(cid: str, choices: list[dict], usage: dict | None = None) -> dict:
    """A completion (or one streamed chunk of it) in OpenAI's shape."""
    out = {"id": cid, "object": "text_completion", "created": int(time.time())}
    out |= {"model": MODEL_ID, "choices": choices}
    return out | ({"usage": usage} if usage is not None else {})


def choice(index: int, text: str, finish: str | None) -> dict:
    return {"text": text, "index": index, "logprobs": None, "finish_reason": finish}


def usage(prompt_tokens: int, done: dict[int, int]) -> dict:
    made = sum(done.values())
    return {"prompt_tokens": prompt_tokens, "completion_tokens": made,
            "total_tokens": prompt_tokens + made}  # fmt: skip


async def streamed(cid: str, seqs: list[Sequence], events: Events, prompt_tokens: int):
    """Server-sent events: a chunk per piece of text, one with each sequence's finish reason
    (the last with the usage), then ``[DONE]``. A client that goes away frees its rows."""
    done: dict[int, int] = {}
    try:
        while len(done) < len(seqs):
            event = await events.queue.get()
            if event[0] == "error":  # OpenAI's way: an error object as the stream's last event
                yield f"data: {json.dumps(error_body(500, event[2]))}\n\n"
                return
            if event[0] == "text":
                part = choice(event[1], event[2], None)
            else:
                done[event[1]] = event[3]
                part = choice(event[1], "", event[2])
            last = len(done) == len(seqs)
            chunk = body(cid, [part], usage(prompt_tokens, done) if last else None)
            yield f"data: {json.dumps(chunk)}\n\n"
        yield "data: [DONE]\n\n"
    finally:
        for seq in seqs:
            seq.cancelled = True


async def collected(cid: str, seqs: list[Sequence], events: Events, prompt_tokens: int) -> dict:
    """The whole completion, every sequence's text and finish reason."""
    texts, reasons, done = [""] * len(seqs), [None] * len(seqs), {}
    try:
        while len(done) < len(seqs):
            event = await events.queue.get()
            if event[0] == "error":
                raise HTTPException(500, event[2])
            if event[0] == "text":
                texts[event[1]] += event[2]
            else:
                reasons[event[1]], done[event[1]] = event[2], event[3]
    finally:
        for seq in seqs:
            seq.cancelled = True
    choices = [choice(i, t, r) for i, (t, r) in enumerate(zip(texts, reasons, strict=True))]
    return body(cid, choices, usage(prompt_tokens, done))


def build_api(cfg: ServeConfig):
    served = find_run(PROJECT, cfg, train_command="austen-net train")
    device = select_device(cfg.device)
    weights = choose_weights(served.checkpoint, device) if cfg.weights == "auto" else cfg.weights
    model, tok, _ = load_model(served.checkpoint, device, weights)
    metrics = Metrics(PROJECT)
    info = {"model": MODEL_ID, "checkpoint": str(served.checkpoint), "weights": weights}
    info |= {"device": str(device), "max_batch": cfg.max_batch}
    app = create_app(PROJECT, info, metrics, max_body_bytes=4 * MAX_PROMPT_CHARS + 65536)
    engine = Engine(
        model,
        tok,
        device,
        max_batch=cfg.max_batch,
        max_queue=cfg.max_queue,
        metrics=metrics,
        stop=lambda: stopping(app),
    )
    app.state.workers.append(engine)
    metrics.gauge("queue_depth", "Sequences waiting for a row.", lambda: len(engine.pending))
    metrics.gauge("active_sequences", "Sequences being decoded.", lambda: len(engine.active))
    created = int(time.time())

    @app.get("/v1/models")
    async def models():
        card = {"id": MODEL_ID, "object": "model", "created": created, "owned_by": PROJECT}
        return {"object": "list", "data": [card]}

    @app.post("/v1/completions")
    async def completions(req: Completion):
        prompt, stops = checked(req, cfg)
        events = Events(asyncio.get_running_loop())
        ids = tok.encode(prompt) or tok.encode("\n")
        seqs = sequences(req, ids, stops, tok, events)
        engine.submit(seqs)  # QueueFull: 503 with Retry-After
        cid = f"cmpl-{uuid.uuid4().hex[:24]}"
        if req.stream:
            return StreamingResponse(
                streamed(cid, seqs, events, len(ids)), media_type="text/event-stream"
            )
        return JSONResponse(await collected(cid, seqs, events, len(ids)))

    return app


BENCH_PROMPTS = ("Emma was", "It is a truth", "Mr. Darcy", "The family of Dashwood", "Anne")


def serve_bench(cfg: BenchConfig) -> int:
    """``bench --serve``: ``austen-net serve`` started on 127.0.0.1 (fp32 weights, eager), then
    ``--serve-requests`` completions of ``--serve-tokens`` tokens (temperature 1, seeded, no stop:
    each runs to its length) at concurrency 1, 4 and 16: tokens/s over all streams and per stream,
    latency percentiles, errors and 503s."""
    which = ServeConfig(checkpoint=cfg.checkpoint)  # --checkpoint, else the newest run
    checkpoint = find_run(PROJECT, which, train_command="austen-net train").checkpoint
    args = ["--checkpoint", checkpoint, "--weights", "fp32"]
    args += ["--max-batch", cfg.max_batch, "--max-queue", max(64, cfg.serve_requests)]
    args += ["--max-tokens", max(1024, cfg.serve_tokens)]

    def request(i: int) -> tuple[str, dict]:
        body = {"prompt": BENCH_PROMPTS[i % len(BENCH_PROMPTS)], "max_tokens": cfg.serve_tokens}
        return "/v1/completions", body | {"temperature": 1.0, "seed": i}

    facts = {"serve_checkpoint": str(checkpoint), "serve_tokens": cfg.serve_tokens}
    return bench_serve(PROJECT, cfg, args, request, facts | {"serve_max_batch": cfg.max_batch})
