"""``austen-net generate``: stream text token by token, forever if asked, KV-cached."""

from __future__ import annotations

import logging
import sys
import time

import torch

from austen_net.config import BUSY_LOAD, GENERATE_COMPILE_MIN_TOKENS, GenerateConfig
from austen_net.decode import compiled_decoder, generate
from austen_net.inference import load_model
from austen_net.tokenizer import Tokenizer
from austen_net.weights import choose_weights, chosen_kernel
from shared.device import compiles, cpu_load, select_device
from shared.errors import Terminated

log = logging.getLogger(__name__)


class StreamDecoder:
    """Turns tokens into text as they come, holding back bytes of a half-finished character."""

    def __init__(self, tok: Tokenizer) -> None:
        self.tok, self.pending, self.before = tok, [], []

    def push(self, token: int) -> str:
        self.pending.append(token)
        if self.tok.kind == "hf":
            return self.push_in_context()
        text = self.tok.decode(self.pending)
        if text.endswith("\ufffd") and len(self.pending) < 4 and self.tok.kind == "bpe":
            return ""  # a multi-byte character split over byte-fallback tokens: wait for the rest
        self.pending = []
        return text

    def push_in_context(self) -> str:
        """A pretrained tokenizer's pieces decode differently alone (a leading space dropped, a
        byte of a character): the new text is what the pending tokens add after the last few."""
        base = self.tok.decode(self.before)
        text = self.tok.decode(self.before + self.pending)
        if text.endswith("\ufffd") and len(self.pending) < 4:
            return ""
        self.before = (self.before + self.pending)[-8:]
        self.pending = []
        return text[len(base) :] if text.startswith(base) else text

    def flush(self) -> str:
        """The bytes still held back (a character cut short is shown as U+FFFD)."""
        text = self.tok.decode(self.pending) if self.pending else ""
        self.pending = []
        return text


def generate_command(cfg: GenerateConfig, out=None) -> int:
    """``austen-net generate``."""
    out = out or sys.stdout
    device = select_device(cfg.device)
    weights = choose_weights(cfg.checkpoint, device) if cfg.weights == "auto" else cfg.weights
    model, tok, _ = load_model(cfg.checkpoint, device, weights)
    step = compiled_step(model, cfg, device, weights)
    generator = torch.Generator(device="cpu")
    if cfg.seed is not None:
        generator.manual_seed(cfg.seed)
    else:
        generator.seed()
    prompt = cfg.prompt.replace("\\n", "\n")
    ids = tok.encode(prompt) or tok.encode("\n")
    if cfg.num_samples > 1 and cfg.batch_samples and not cfg.infinite:
        batches = sample_batches(cfg.num_samples, rows_that_fit(model.cfg))
    else:
        batches = [1] * cfg.num_samples
    first, speed = 0, Speed(step is not None)
    try:
        for rows in batches:
            idx = torch.tensor([ids] * rows, dtype=torch.long, device=device)
            tokens = generate(
                model,
                idx,
                None if cfg.infinite else cfg.max_new_tokens,
                temperature=cfg.temperature,
                top_k=cfg.top_k,
                top_p=cfg.top_p,
                use_cache=cfg.cache,
                generator=generator,
                step=step,
            )
            numbers = range(first + 1, first + rows + 1) if cfg.num_samples > 1 else [None]
            if not write_samples(speed.count(tokens, rows), tok, prompt, numbers, out):
                return 0  # Ctrl-C is how an --infinite story ends
            first += rows
    finally:
        log.info(speed.line(weights, device))
    return 0


class Speed:
    """Tokens per second as the reader saw them once decoding runs: not each batch's first token
    (it carries the prompt) nor, compiled, its second (the first one-token step, which carries
    the compile: counting it made a 300-token run read 9 tokens/s where the steps ran 380)."""

    def __init__(self, compiled: bool) -> None:
        self.tokens, self.seconds = 0, 0.0
        self.skip = 2 if compiled else 1  # tokens at the start of a batch not counted
        self.compiled = compiled

    def count(self, tokens, rows: int):
        last = None
        for i, t in enumerate(tokens):
            now = time.perf_counter()
            if last is not None:
                self.tokens, self.seconds = self.tokens + rows, self.seconds + now - last
            if i + 1 >= self.skip:
                last = now
            yield t

    def line(self, weights: str, device) -> str:
        rate = f"{self.tokens / self.seconds:,.1f} tokens/s" if self.seconds else "too few tokens"
        path, left_out = (
            ("compiled", "first two tokens") if self.compiled else ("eager", "first token")
        )
        return f"{rate} ({weights} weights, {path} decode step, {device}; {left_out} not counted)"


BATCH_CACHE_BYTES = 1 << 30  # the KV cache one batch of samples may hold
MAX_BATCH_ROWS = 64  # past this a CPU gains nothing from a wider batch


def rows_that_fit(cfg) -> int:
    """Samples per batch: as many as ``BATCH_CACHE_BYTES`` of fp32 keys and values hold at the
    full context (``--num-samples 100000`` in one batch asked for 3.2 GB and failed), at most
    ``MAX_BATCH_ROWS``, at least 1."""
    per_row = 2 * cfg.n_layer * cfg.block_size * cfg.kv_heads * cfg.head_dim * 4
    return max(1, min(MAX_BATCH_ROWS, BATCH_CACHE_BYTES // max(per_row, 1)))


def sample_batches(samples: int, rows: int) -> list[int]:
    """``samples`` split into batches of ``rows`` (the last holds the rest)."""
    return [rows] * (samples // rows) + ([samples % rows] if samples % rows else [])


def write_samples(tokens, tok: Tokenizer, prompt: str, numbers, out) -> bool:
    """Writes the samples of one batch: the first streams as its tokens come, the others follow
    when it ends (each after a ``--- sample N ---`` line when ``numbers`` are given). False when
    Ctrl-C stopped it (what was generated is written out first); SIGTERM is raised again."""
    numbers = list(numbers)
    decoders = [StreamDecoder(tok) for _ in numbers]
    later = [prompt for _ in numbers[1:]]
    heading = [f"\n--- sample {n} ---\n" if n is not None else "" for n in numbers]
    out.write(heading[0] + prompt)
    out.flush()
    stopped = None
    try:
        for row_tokens in tokens:
            out.write(decoders[0].push(int(row_tokens[0])))
            out.flush()
            for i in range(1, len(numbers)):
                later[i - 1] += decoders[i].push(int(row_tokens[i]))
    except KeyboardInterrupt as exc:
        stopped = exc
    out.write(decoders[0].flush() + "\n")
    for i in range(1, len(numbers)):
        out.write(heading[i] + later[i - 1] + decoders[i].flush() + "\n")
    out.flush()
    if isinstance(stopped, Terminated):
        raise stopped  # SIGTERM: exit 143, as for every command
    return stopped is None


def compile_pays_off(cfg: GenerateConfig, device) -> bool:
    """``--compile auto`` off CUDA: the tokens asked for repay the compile, and the CPUs are not
    busy with other work, where compiled decoding ran no faster than eager and its compile took
    half as long again (NOTES.md, "When compiling the decode step pays")."""
    if cfg.infinite:
        return False  # a CPU would make the reader wait half a minute
    if cfg.max_new_tokens * cfg.num_samples < GENERATE_COMPILE_MIN_TOKENS:
        return False
    load = cpu_load()
    if load is not None and load >= BUSY_LOAD:
        log.info(
            f"--compile auto: eager (the CPUs are busy: load {load:.1f} per core; compiled "
            "decoding is no faster than eager beside other work)"
        )
        return False
    return True


def compiled_step(model, cfg: GenerateConfig, device, weights: str):
    """The compiled one-token step, or None (eager) when off, not repaid, uncached or fbgemm's
    int8; the compile time (paid at the first generated token) is reported on stderr."""
    if not compiles(cfg.compile, device, compile_pays_off(cfg, device)) or not cfg.cache:
        return None
    kernel = chosen_kernel(cfg.checkpoint, device, weights)  # what --weights auto measured
    compiled = compiled_decoder(
        model,
        report=lambda s: log.info(f"compiled the decode step in {s:.1f} s ({kernel} products)"),
        kernel=kernel,
    )
    if compiled is None:
        log.info(
            "--compile: int8 weights run eagerly on this CPU (fbgemm's dynamic int8 kernel, "
            "used without AVX-512, does not compile into a graph)"
        )
    return compiled
