"""Generating text from the model: the loop and its compiled step, beside model.py (as gpt-fast's
generate.py is beside its model.py: the network in one file, the engine in the other).

- ``KVCache``: each layer's keys and values at fixed addresses, written in place at a position
  tensor, so that every step has the same shapes (and CUDA graphs can replay over it).
- ``generate``: the prompt through the model at once (its keys and values into the cache), then
  one new position at a time through the same attention (model.py's ``CausalSelfAttention``,
  which reads the cache up to the new position); when the context fills, the window slides.
- ``Decoder``: that one-token forward compiled (``torch.compile``, ``fullgraph``, one graph for a
  whole generation; ``mode="reduce-overhead"`` on CUDA), owned by whoever generates and passed as
  ``generate(step=...)``; ``compiled_decoder`` returns None for weights that cannot be compiled
  whole (fbgemm's dynamic int8, whose packed weights break the graph).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterator

import torch
import torch._dynamo
from torch import nn

from austen_net.int8 import Int8Linear
from austen_net.model import GPT, GPTConfig
from austen_net.sampling import sample


class KVCache:
    """Keys and values of every layer, (B, kv heads, block_size, D), written in place at the
    positions given: each new token costs one position's work."""

    def __init__(self, cfg: GPTConfig, batch: int, device, dtype) -> None:
        shape = (batch, cfg.kv_heads, cfg.block_size, cfg.head_dim)
        self.k = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(cfg.n_layer)]
        self.v = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(cfg.n_layer)]

    def write(self, layer: int, k: torch.Tensor, v: torch.Tensor, pos: torch.Tensor):
        """``k``, ``v`` (B, kv heads, T, D) at positions ``pos`` (T,); the layer's whole cache."""
        self.k[layer].index_copy_(2, pos, k.to(self.k[layer].dtype))
        self.v[layer].index_copy_(2, pos, v.to(self.v[layer].dtype))
        return self.k[layer], self.v[layer]


def attention_dtype(like: torch.Tensor, weights: torch.dtype) -> torch.dtype:
    """The dtype keys and values have in attention: autocast's when it is on, else the weights'."""
    if torch.is_autocast_enabled(like.device.type):
        return torch.get_autocast_dtype(like.device.type)
    return weights


def one_token(model: GPT) -> Callable:
    """``model``'s one-token step: logits (B, vocab) of ``tokens`` (B, 1) at position ``pos``."""

    def step(tokens: torch.Tensor, pos: torch.Tensor, cache: KVCache) -> torch.Tensor:
        logits, _ = model(tokens, pos=pos, cache=cache)
        return logits[:, -1]

    return step


@torch.no_grad()
def generate(
    model: GPT,
    idx: torch.Tensor,
    max_new_tokens: int | None,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    use_cache: bool = True,
    generator: torch.Generator | None = None,
    step: Callable | None = None,
) -> Iterator[torch.Tensor]:
    """Yield new tokens (B,) one at a time after the prompt ``idx`` (B, T); ``max_new_tokens=None``
    never stops.

    With the cache each new token costs one position's work. When the context fills, the window
    slides: the context drops to its last half and the cache is refilled from it (the uncached
    path predicts from the same contexts, so both give the same tokens). ``step``: the one-token
    forward (a ``Decoder``; by default the model's own, eager). The module's train/eval mode is
    restored when the generator finishes or is closed."""
    was_training = model.training
    model.eval()
    block, produced = model.cfg.block_size, 0
    context, filled, cache = idx[:, -block:], False, None
    if use_cache:
        dtype = attention_dtype(idx, model.tok_emb.weight.dtype)
        cache = KVCache(model.cfg, len(idx), idx.device, dtype)
    step = step or one_token(model)
    try:
        while max_new_tokens is None or produced < max_new_tokens:
            if not use_cache or not filled:  # the prompt (or the slid window) at once
                hidden = model(context, cache=cache, head=False)  # (into the cache, if any)
                logits, filled = model.head(hidden[:, -1]), use_cache
            else:  # one new position, attending to the cached ones
                pos = torch.tensor([context.shape[1] - 1], device=idx.device)
                last = context[:, -1:].clone(memory_format=torch.contiguous_format)  # (B, 1):
                logits = step(last, pos, cache)  # strides a compiled step sees the same each time
            nxt = sample(logits.float(), temperature, top_k, top_p, generator)
            context = torch.cat([context, nxt[:, None]], dim=1)
            if context.shape[1] > block:
                context, filled = context[:, -(block // 2) :], False
            produced += 1
            yield nxt
    finally:
        model.train(was_training)


REDUCTION_ROWS = 2  # up to this many rows a product is the reduction; more: the BLAS call
KERNELS = ("blas", "reduction")


class RowReduction(nn.Module):
    """A Linear layer (or an ``int8.Int8Linear``) whose product at one or two rows is written as a
    broadcast multiply and a sum over the input dimension, ``(W * x).sum(-1)``, with the same
    tensors. Inside a compiled step Inductor makes that one vectorised loop that streams the
    weights at close to memory speed, in fp32, bf16 (summed in fp32) and int8 (dequantised in the
    loop); a BLAS library's one-row kernel (MKL's sgemv) streamed them 2-4x slower on a 2-core AMD
    EPYC (NOTES.md, "The decode step's kernel"). More rows (a prefill, a batch) keep the library."""

    def __init__(self, linear: nn.Module) -> None:
        super().__init__()
        self.linear = linear

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, x.shape[-1])
        if rows.shape[0] > REDUCTION_ROWS:
            return self.linear(x)
        w = self.linear.weight
        y = (w[None].float() * rows[:, None, :].float()).sum(-1)
        if isinstance(self.linear, Int8Linear):  # W ~= W_q * scale, one scale per output row
            y = y * self.linear.scale.float()
        if self.linear.bias is not None:
            y = y + self.linear.bias.float()
        return y.to(x.dtype).reshape(*x.shape[:-1], -1)


def with_row_reductions(module: nn.Module) -> nn.Module:
    """A view of ``module`` whose Linear layers are ``RowReduction``s: the same parameters and
    buffers (nothing copied), its own module tree (``module`` itself is left as it is)."""
    if isinstance(module, nn.Linear | Int8Linear):
        return RowReduction(module)
    view = copy.copy(module)
    view._modules = {name: with_row_reductions(m) for name, m in module._modules.items()}
    return view


class Decoder:
    """``model``'s one-token step, eager or compiled; pass it to ``generate(step=...)``. Build it
    once and keep it: compiling takes half a minute on a CPU, and each ``Decoder`` compiles its own
    (a copy of a model gets its own decoder, never the original's weights). ``kernel``: the
    products at batch 1 and 2 by the BLAS library (``blas``) or as reductions (``reduction``:
    ``RowReduction``); the prompt's pass is the model's own either way."""

    def __init__(self, model: GPT, compile: bool = True, report=None, kernel: str = "blas") -> None:
        if kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {KERNELS}, not {kernel!r}")
        self.model, self.kernel = model, kernel
        self.compiled = compile
        self.report = report  # called once with the first call's seconds (the compile, compiled)
        self.cache: KVCache | None = None  # the cache whose tensors are marked static
        step = one_token(model if kernel == "blas" else with_row_reductions(model))
        # a code object of its own: torch.compile keeps its graphs (and its limit of recompiles)
        # per code object, and every Decoder's model is another model to compile for
        step.__code__ = step.__code__.replace()
        if compile:
            cuda = model.tok_emb.weight.device.type == "cuda"
            mode = "reduce-overhead" if cuda else None
            step = torch.compile(step, fullgraph=True, dynamic=False, mode=mode)
        self.step = step

    def __call__(self, tokens: torch.Tensor, pos: torch.Tensor, cache: KVCache) -> torch.Tensor:
        if self.compiled and cache is not self.cache:
            # the cache keeps its addresses for a whole generation: CUDA graphs replay over it
            for t in (*cache.k, *cache.v):
                torch._dynamo.mark_static_address(t)
            self.cache = cache
        if self.report is None:
            return self.step(tokens, pos, cache)
        t0 = time.perf_counter()
        logits = self.step(tokens, pos, cache)
        self.report(time.perf_counter() - t0)
        self.report = None
        return logits


def compiled_decoder(model: GPT, report=None, kernel: str = "blas") -> Decoder | None:
    """A compiled ``Decoder`` for ``model``, or None for weights it cannot compile whole
    (fbgemm's dynamic int8 Linear, the int8 kernel of CPUs without AVX-512)."""
    if any(hasattr(m, "_packed_params") for m in model.modules()):
        return None
    return Decoder(model, compile=True, report=report, kernel=kernel)
