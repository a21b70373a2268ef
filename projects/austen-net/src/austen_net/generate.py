"""``austen-net generate``: stream text token by token, forever if asked, KV-cached."""

from __future__ import annotations

import sys
import time

import torch

from austen_net.config import GENERATE_COMPILE_MIN_TOKENS, GenerateConfig
from austen_net.inference import load_model
from austen_net.tokenizer import Tokenizer
from shared.device import select_device
from shared.errors import Terminated, UserError
from shared.progress import info


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


def generate(cfg: GenerateConfig, out=None) -> int:
    out = out or sys.stdout
    if not cfg.infinite and cfg.max_new_tokens < 1:
        raise UserError("--max-new-tokens must be at least 1 (or use --infinite)")
    if cfg.temperature < 0:
        raise UserError("--temperature must be >= 0 (0 is greedy)")
    if cfg.top_p is not None and not 0 < cfg.top_p <= 1:
        raise UserError("--top-p must be in (0, 1]")
    if cfg.top_k < 0:
        raise UserError("--top-k must be >= 0 (0: no top-k)")
    if cfg.num_samples < 1:
        raise UserError("--num-samples must be at least 1")
    device = select_device(cfg.device)
    model, tok, _ = load_model(cfg.checkpoint, device, cfg.weights)
    step = decode_step(model, cfg, device)
    generator = torch.Generator(device="cpu")
    if cfg.seed is not None:
        generator.manual_seed(cfg.seed)
    else:
        generator.seed()
    prompt = cfg.prompt.replace("\\n", "\n")
    ids = tok.encode(prompt) or tok.encode("\n")
    for sample_index in range(cfg.num_samples):
        if cfg.num_samples > 1:
            out.write(f"\n--- sample {sample_index + 1} ---\n")
        out.write(prompt)
        out.flush()
        decoder = StreamDecoder(tok)
        idx = torch.tensor([ids], dtype=torch.long, device=device)
        steps = None if cfg.infinite else cfg.max_new_tokens
        try:
            for token in model.generate(
                idx,
                steps,
                temperature=cfg.temperature,
                top_k=cfg.top_k,
                top_p=cfg.top_p,
                use_cache=cfg.cache,
                generator=generator,
                step=step,
            ):
                out.write(decoder.push(int(token[0])))
                out.flush()
        except KeyboardInterrupt as exc:  # what was generated is written out first
            out.write(decoder.flush() + "\n")
            out.flush()
            if isinstance(exc, Terminated):
                raise  # SIGTERM: exit 143, as for every command
            return 0  # Ctrl-C is how an --infinite story ends
        out.write("\n")
    return 0


def compile_pays(cfg: GenerateConfig, device) -> bool:
    """``--compile auto``: the tokens asked for repay the compile (README, "Speed")."""
    least = GENERATE_COMPILE_MIN_TOKENS["cuda" if device.type == "cuda" else "cpu"]
    if cfg.infinite:
        return device.type == "cuda"  # a CPU would make the reader wait half a minute
    return cfg.max_new_tokens * cfg.num_samples >= least


def decode_step(model, cfg: GenerateConfig, device):
    """The compiled one-token step, or None (eager) when off, not repaid, uncached or int8; the
    compile time (paid at the first generated token) is reported on stderr."""
    wanted = cfg.compile == "on" or (cfg.compile == "auto" and compile_pays(cfg, device))
    if not wanted or not cfg.cache:
        return None
    compiled = model.compiled_step()
    if compiled is None:
        info("--compile: int8 weights run eagerly (fbgemm's kernels do not compile into a graph)")
        return None
    first = True

    def step(idx, pos, cache):
        nonlocal first
        if not first:
            return compiled(idx, pos, cache)
        t0 = time.perf_counter()
        logits = compiled(idx, pos, cache)
        first = False
        info(f"compiled the decode step in {time.perf_counter() - t0:.1f} s")
        return logits

    return step
