"""The fast path for generation: a fixed-shape one-token step, compiled once, beside model.py.

``GPT.generate`` (model.py) is the plain KV-cached loop a reader learns from: the forward pass on
the new position, its keys and values appended to the cache. This module is what makes the same
tokens come faster, kept apart so that model.py stays the network:

- ``StaticCache``: the KV cache at fixed addresses, written in place at a position tensor (so
  every step has the same shapes, and CUDA graphs can replay over it);
- ``attention_step`` / ``decode_step``: one new position through every block, attention written
  out over the whole cache with the positions after it masked (for one query the compiler fuses
  that into a few small kernels, where the fused attention operator costs a fixed time a call
  on a CPU: measured in NOTES.md);
- ``Decoder``: the step, eager or compiled (``torch.compile``, ``fullgraph``, one graph for a
  whole generation; ``mode="reduce-overhead"`` on CUDA), owned by whoever generates and passed
  to ``GPT.generate(step=...)``; ``compiled_decoder`` returns None for weights that cannot be
  compiled whole (fbgemm's dynamic int8, whose packed weights break the graph).
"""

from __future__ import annotations

import time

import torch
import torch._dynamo

from austen_net.model import GPT, CausalSelfAttention, GPTConfig, KVCache
from austen_net.rope import Rotary


class StaticCache(KVCache):
    """A ``KVCache`` whose tensors keep their addresses: the compiled step writes into them in
    place, and CUDA graphs replay only over inputs whose address never changes."""

    def __init__(self, cfg: GPTConfig, batch: int, device, dtype) -> None:
        super().__init__(cfg, batch, device, dtype)
        for t in (*self.k, *self.v):
            torch._dynamo.mark_static_address(t)

    def write(self, layer: int, k: torch.Tensor, v: torch.Tensor, pos: torch.Tensor):
        """One position's keys and values, in place (no new tensor)."""
        self.k[layer].index_copy_(2, pos, k)
        self.v[layer].index_copy_(2, pos, v)
        return self.k[layer], self.v[layer]


def rotate_at(rotary: Rotary, x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """RoPE at one position ``pos`` (a 1-element tensor, so the step has fixed shapes): (B, H, 1,
    D) rotated in real arithmetic, which a compiler fuses into one kernel."""
    cos, sin = rotary.rotation.index_select(0, pos).float().unbind(-1)
    x0, x1 = x.float().unflatten(-1, (-1, 2)).unbind(-1)
    return torch.stack((x0 * cos - x1 * sin, x0 * sin + x1 * cos), dim=-1).flatten(-2).to(x.dtype)


def attention_step(
    attn: CausalSelfAttention,
    x: torch.Tensor,
    cache: StaticCache,
    pos: torch.Tensor,
    visible: torch.Tensor,
) -> torch.Tensor:
    """One new position's attention: its key and value written into the cache at ``pos``,
    attention over the whole cache with ``visible`` (the positions up to ``pos``) unmasked. The
    query heads that share a key/value head are grouped (``(B, kv, group, D)``), so grouped-query
    attention reads the cache as it is, without repeating it."""
    b, _, c = x.shape
    d, kv = c // attn.n_head, attn.kv_heads
    q, k, v = attn.qkv(x).split([c, kv * d, kv * d], dim=-1)
    q = q.view(b, 1, attn.n_head, d).transpose(1, 2)
    k = k.view(b, 1, kv, d).transpose(1, 2)
    v = v.view(b, 1, kv, d).transpose(1, 2)
    if attn.rotary is not None:
        q, k = rotate_at(attn.rotary, q, pos), rotate_at(attn.rotary, k, pos)
    keys, values = cache.write(attn.layer, k.to(cache.k[0].dtype), v.to(cache.v[0].dtype), pos)
    q = q.to(keys.dtype).reshape(b, kv, attn.n_head // kv, d)
    scores = (q @ keys.transpose(-1, -2)) * (d**-0.5)  # (B, kv, group, T)
    scores = scores.float().masked_fill(~visible, float("-inf"))
    y = scores.softmax(-1).to(values.dtype) @ values  # (B, kv, group, D)
    return attn.resid_drop(attn.proj(y.reshape(b, 1, c).to(x.dtype)))


def decode_step(
    model: GPT, idx: torch.Tensor, pos: torch.Tensor, cache: StaticCache
) -> torch.Tensor:
    """Logits (B, vocab) of one new token per row (``idx`` (B, 1)) at position ``pos`` (a
    1-element long tensor), its keys and values written into ``cache`` in place. Every shape is
    the same at every position: compiled once for a whole generation."""
    x = model.tok_emb(idx)
    if model.pos_emb is not None:
        x = x + model.pos_emb(pos)
    visible = (torch.arange(model.cfg.block_size, device=idx.device) <= pos)[None]  # (1, T)
    for block in model.blocks:
        x = x + attention_step(block.attn, block.norm1(x), cache, pos, visible)
        x = x + block.mlp(block.norm2(x))
    return model.head(model.norm(x))[:, -1]


class Decoder:
    """``model``'s one-token step, eager or compiled, with the cache kind it writes into; pass it
    to ``model.generate(step=...)``. Build it once and keep it: compiling takes half a minute on
    a CPU, and each ``Decoder`` compiles its own (a copy of a model gets its own decoder, never
    the original's weights)."""

    cache = StaticCache

    def __init__(self, model: GPT, compile: bool = True, report=None) -> None:
        self.model = model
        self.compiled = compile
        self.report = report  # called once with the first call's seconds (the compile, compiled)

        def step(idx: torch.Tensor, pos: torch.Tensor, cache: StaticCache) -> torch.Tensor:
            return decode_step(model, idx, pos, cache)

        if compile:
            cuda = model.tok_emb.weight.device.type == "cuda"
            mode = "reduce-overhead" if cuda else None
            step = torch.compile(step, fullgraph=True, dynamic=False, mode=mode)
        self.step = step

    def __call__(self, idx: torch.Tensor, pos: torch.Tensor, cache: StaticCache) -> torch.Tensor:
        if self.report is None:
            return self.step(idx, pos, cache)
        t0 = time.perf_counter()
        logits = self.step(idx, pos, cache)
        self.report(time.perf_counter() - t0)
        self.report = None
        return logits


def compiled_decoder(model: GPT, report=None) -> Decoder | None:
    """A compiled ``Decoder`` for ``model``, or None for weights it cannot compile whole
    (fbgemm's dynamic int8 Linear, the int8 kernel of CPUs without AVX-512)."""
    if any(hasattr(m, "_packed_params") for m in model.modules()):
        return None
    return Decoder(model, compile=True, report=report)
