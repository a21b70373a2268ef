"""Our decoder-only transformer, in the spirit of nanoGPT's model.py: the network and the plain
KV-cached generation loop a reader learns from.

One dataclass config; one module per concept: RMSNorm, CausalSelfAttention (through
``F.scaled_dot_product_attention``, with a KV cache for generation), MLP (GELU or SwiGLU), Block
(pre-norm, residual), GPT (embeddings, blocks, tied head, ``configure_optimizers``, ``generate``).
Beside it: the rotary position embedding (rope.py), the chunked training loss (loss.py), how a
token is drawn from the logits (sampling.py), and the fast decode engine (decode.py).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Literal

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import nn

from austen_net.loss import linear_cross_entropy
from austen_net.rope import Rotary
from austen_net.sampling import sample
from shared.layers import Dropout
from shared.optim import adamw, decay_groups


@dataclass
class GPTConfig:
    vocab_size: int = 8192
    block_size: int = 256  # context length in tokens
    n_layer: int = 6
    n_head: int = 6
    n_embd: int = 384
    dropout: float = 0.2
    bias: bool = False
    pos: Literal["rope", "learned"] = "rope"
    norm: Literal["rmsnorm", "layernorm"] = "rmsnorm"
    mlp: Literal["swiglu", "gelu"] = "swiglu"
    tie_weights: bool = True
    # what pretrained models bring (austen-net import); the defaults are what we train, so every
    # checkpoint written before these fields existed loads as it was
    n_kv_head: int = 0  # key/value heads, fewer than n_head: grouped-query attention (0: n_head)
    rope_theta: float = 10000.0  # RoPE's base
    # Llama 3.1/3.2's "llama3" RoPE scaling (rope_factor 0: none): see rope_frequencies
    rope_factor: float = 0.0
    rope_low_freq_factor: float = 1.0
    rope_high_freq_factor: float = 4.0
    rope_original_context: int = 0
    intermediate_size: int = 0  # MLP width (0: 4 x n_embd for GELU, about 8/3 x for SwiGLU)
    norm_eps: float = 0.0  # (0: RMSNorm 1e-6, LayerNorm 1e-5)
    gelu: Literal["exact", "tanh"] = "exact"  # GPT-2's is the tanh approximation

    def as_dict(self) -> dict:
        return asdict(self)

    @property
    def rope_scaling(self) -> tuple[float, float, float, int] | None:
        """(factor, low, high, original context) of Llama 3's RoPE scaling, or None."""
        if not self.rope_factor:
            return None
        return (
            self.rope_factor,
            self.rope_low_freq_factor,
            self.rope_high_freq_factor,
            self.rope_original_context,
        )

    @property
    def kv_heads(self) -> int:
        return self.n_kv_head or self.n_head

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    @property
    def mlp_hidden(self) -> int:
        if self.intermediate_size:
            return self.intermediate_size
        # SwiGLU uses 2/3 of 4x width in each of its two input projections: same parameter count
        return (
            int(8 * self.n_embd / 3 / 64 + 0.999) * 64 if self.mlp == "swiglu" else 4 * self.n_embd
        )


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x, (x.shape[-1],), self.weight, self.eps)


def make_norm(cfg: GPTConfig) -> nn.Module:
    if cfg.norm == "rmsnorm":
        return RMSNorm(cfg.n_embd, cfg.norm_eps or 1e-6)
    return nn.LayerNorm(cfg.n_embd, eps=cfg.norm_eps or 1e-5, bias=cfg.bias)


class KVCache:
    """Preallocated keys and values per layer: (B, H, block_size, D), in the dtype attention
    computes in (bf16 under a GPU's autocast, fp32 on a CPU)."""

    def __init__(self, cfg: GPTConfig, batch: int, device, dtype) -> None:
        shape = (batch, cfg.kv_heads, cfg.block_size, cfg.head_dim)
        self.k = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(cfg.n_layer)]
        self.v = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(cfg.n_layer)]

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor, start: int):
        end = start + k.shape[-2]
        self.k[layer][:, :, start:end] = k
        self.v[layer][:, :, start:end] = v
        return self.k[layer][:, :, :end], self.v[layer][:, :, :end]


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: GPTConfig, layer: int, rotary: Rotary | None) -> None:
        super().__init__()
        assert cfg.n_embd % cfg.n_head == 0 and cfg.n_head % cfg.kv_heads == 0
        self.layer, self.n_head, self.kv_heads = layer, cfg.n_head, cfg.kv_heads
        self.qkv = nn.Linear(
            cfg.n_embd, cfg.n_embd + 2 * cfg.kv_heads * cfg.head_dim, bias=cfg.bias
        )
        self.proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.resid_drop = Dropout(cfg.dropout)
        self.rotary = rotary

    def forward(
        self, x: torch.Tensor, cache: KVCache | None = None, start: int = 0
    ) -> torch.Tensor:
        b, t, c = x.shape
        d = c // self.n_head
        if self.kv_heads == self.n_head:
            q, k, v = self.qkv(x).view(b, t, 3, self.n_head, d).permute(2, 0, 3, 1, 4)
        else:  # grouped-query attention: each key/value head serves n_head / kv_heads queries
            q, k, v = self.qkv(x).split([c, self.kv_heads * d, self.kv_heads * d], dim=-1)
            q = q.view(b, t, self.n_head, d).transpose(1, 2)
            k = k.view(b, t, self.kv_heads, d).transpose(1, 2)
            v = v.view(b, t, self.kv_heads, d).transpose(1, 2)
        if self.rotary is not None:
            q, k = self.rotary(q, start), self.rotary(k, start)
        if cache is not None:
            k, v = cache.update(self.layer, k, v, start)
        # A query block starting at position 0 is causal over itself; a single new token (the
        # KV-cache step) attends to everything cached before it.
        causal = t > 1
        if causal and start > 0:
            raise ValueError("multi-token steps with a KV cache must start at position 0")
        # no dropout on the attention probabilities (only on the residual branches): it cost 12%
        # of a CPU training step, and fused attention kernels run without it
        y = F.scaled_dot_product_attention(
            q, k, v, is_causal=causal, enable_gqa=self.kv_heads != self.n_head
        )
        y = y.transpose(1, 2).contiguous().view(b, t, c)
        return self.resid_drop(self.proj(y))


class MLP(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.swiglu, self.gelu = cfg.mlp == "swiglu", cfg.gelu
        hidden = cfg.mlp_hidden
        self.up = nn.Linear(cfg.n_embd, (2 if self.swiglu else 1) * hidden, bias=cfg.bias)
        self.down = nn.Linear(hidden, cfg.n_embd, bias=cfg.bias)
        self.drop = Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.up(x)
        if self.swiglu:
            a, g = h.chunk(2, dim=-1)
            h = F.silu(g) * a
        else:
            h = F.gelu(h, approximate="tanh" if self.gelu == "tanh" else "none")
        return self.drop(self.down(h))


class Block(nn.Module):
    def __init__(self, cfg: GPTConfig, layer: int, rotary: Rotary | None) -> None:
        super().__init__()
        self.norm1, self.attn = make_norm(cfg), CausalSelfAttention(cfg, layer, rotary)
        self.norm2, self.mlp = make_norm(cfg), MLP(cfg)

    def forward(self, x, cache=None, start=0):
        x = x + self.attn(self.norm1(x), cache, start)
        return x + self.mlp(self.norm2(x))


# The projections that write into the residual stream, found by name as nanoGPT does (a name
# survives wrappers such as DDP or torch.compile, an attribute on a module may not).
RESIDUAL_PROJECTIONS = ("attn.proj.weight", "mlp.down.weight")


class GPT(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        head_dim = cfg.n_embd // cfg.n_head
        rotary = (
            Rotary(head_dim, cfg.block_size, cfg.rope_theta, cfg.rope_scaling)
            if cfg.pos == "rope"
            else None
        )
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.pos_emb = nn.Embedding(cfg.block_size, cfg.n_embd) if cfg.pos == "learned" else None
        self.drop = Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg, i, rotary) for i in range(cfg.n_layer))
        self.norm = make_norm(cfg)
        self.head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        if cfg.tie_weights:
            self.head.weight = self.tok_emb.weight
        self.apply(self._init)
        self.grad_checkpoint = False  # train --grad-checkpoint: recompute each block in backward
        # GPT-2's scaled init: residual projections shrink with depth so the stream stays O(1).
        for name, p in self.named_parameters():
            if name.endswith(RESIDUAL_PROJECTIONS):
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=0.02)

    def num_params(self, non_embedding: bool = True) -> int:
        n = sum(p.numel() for p in self.parameters())
        # weights frozen into buffers under LoRA (lora.freeze_into_buffers) count too
        n += sum(b.numel() for k, b in self.named_buffers() if k.endswith((".weight", ".bias")))
        if non_embedding and self.pos_emb is not None:
            n -= self.pos_emb.weight.numel()
        return n

    def forward(
        self,
        idx: torch.Tensor,
        cache: KVCache | None = None,
        start: int = 0,
        last_only: bool = False,
        targets: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logits (B, T, vocab) for token ids (B, T) placed at positions ``start..start+T``;
        (B, 1, vocab) for the last position alone with ``last_only`` (generation). With
        ``targets`` (B, T): the mean next-token cross-entropy instead, computed a chunk of rows
        at a time so the logits never exist whole (loss.py)."""
        t = idx.shape[1]
        if start + t > self.cfg.block_size:
            raise ValueError(f"{start + t} tokens exceed the context of {self.cfg.block_size}")
        x = self.tok_emb(idx)
        if self.pos_emb is not None:
            x = x + self.pos_emb(torch.arange(start, start + t, device=idx.device))
        x = self.drop(x)
        for block in self.blocks:
            if self.grad_checkpoint and self.training and cache is None and torch.is_grad_enabled():
                # keep only each block's input; its activations are recomputed in backward
                x = torch.utils.checkpoint.checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x, cache, start)
        if last_only:
            x = x[:, -1:]
        if targets is not None:
            return linear_cross_entropy(
                self.norm(x).flatten(0, 1), self.head.weight, targets.flatten()
            )
        return self.head(self.norm(x))

    def configure_optimizers(self, lr: float, weight_decay: float, betas=(0.9, 0.95), device=None):
        """AdamW with weight decay on matrices only (not on norms, biases), through the portfolio's
        one AdamW rule (fused where PyTorch has the kernel)."""
        device = torch.device(device) if device is not None else self.head.weight.device
        return adamw(
            decay_groups(self.named_parameters(), weight_decay), device, lr=lr, betas=betas
        )

    @torch.no_grad()
    def generate(
        self,
        idx: torch.Tensor,
        max_new_tokens: int | None,
        *,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        use_cache: bool = True,
        generator: torch.Generator | None = None,
        step=None,
    ) -> Iterator[torch.Tensor]:
        """Yield new tokens (B,) one at a time; ``max_new_tokens=None`` never stops.

        With the cache each new token costs one position's work. When the context fills, the
        window slides: the context drops to its last half and the cache is rebuilt from it (the
        uncached path uses the same contexts, so both give the same tokens). ``step``: a
        :class:`austen_net.decode.Decoder`, which runs each cached token through a fixed-shape
        step (compiled: fewer operator launches) with a cache of its own kind; the same tokens.
        The module's train/eval mode is restored when the generator finishes or is closed.
        """
        was_training = self.training
        self.eval()
        try:
            yield from self._generate(
                idx, max_new_tokens, temperature, top_k, top_p, use_cache, generator, step
            )
        finally:
            self.train(was_training)

    def _generate(
        self, idx, max_new_tokens, temperature, top_k, top_p, use_cache, generator, step=None
    ):
        # Both paths predict from exactly the same context: the last `block` tokens at first,
        # then, each time it would overflow, its last half (the cache is refilled from it: the
        # same tensors, so a compiled step sees the same inputs).
        block = self.cfg.block_size
        context, cache, filled, produced = idx[:, -block:], None, False, 0
        while max_new_tokens is None or produced < max_new_tokens:
            if not use_cache:
                logits = self(context, last_only=True)[:, -1]
            elif not filled:  # prefill: the whole context at once
                if cache is None:
                    dtype = attention_dtype(idx, self.tok_emb.weight.dtype)
                    kind = KVCache if step is None else step.cache
                    cache = kind(self.cfg, idx.shape[0], idx.device, dtype)
                logits = self(context, cache, 0, last_only=True)[:, -1]
                filled = True
            elif step is not None:  # one new position through the decoder's fixed-shape step
                pos = torch.tensor([context.shape[1] - 1], device=idx.device)
                last = context[:, -1:].clone(memory_format=torch.contiguous_format)
                logits = step(last, pos, cache)
            else:  # one new position, attending to the cached ones
                logits = self(context[:, -1:], cache, context.shape[1] - 1)[:, -1]
            nxt = sample(logits.float(), temperature, top_k, top_p, generator)
            context = torch.cat([context, nxt[:, None]], dim=1)
            if context.shape[1] > block:
                context, filled = context[:, -(block // 2) :], False
            produced += 1
            yield nxt


def attention_dtype(like: torch.Tensor, weights: torch.dtype) -> torch.dtype:
    """The dtype keys and values have in attention: autocast's when it is on, else the weights'."""
    device_type = like.device.type
    if torch.is_autocast_enabled(device_type):
        return torch.get_autocast_dtype(device_type)
    return weights
