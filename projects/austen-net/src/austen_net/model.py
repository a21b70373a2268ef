"""Our decoder-only transformer, in the spirit of nanoGPT's model.py. One dataclass config; one
module per concept: RMSNorm, CausalSelfAttention (one function for training and for generating a
token at a time: it takes positions, and a cache to write), MLP (GELU or SwiGLU), Block, GPT (the
loss, ``configure_optimizers``). Beside it: RoPE (rope.py); generation and its KV cache (decode.py).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Literal

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import nn

from austen_net.rope import Rotary


@dataclass
class Imported:
    """What a pretrained model (GPT-2, Llama: ``austen-net import``) brings beside the shape a
    learner sets; the defaults are what ``train`` builds."""

    n_kv_head: int = 0  # key/value heads, fewer than n_head: grouped-query attention (0: n_head)
    rope_theta: float = 10000.0  # RoPE's base
    rope_factor: float = 0.0  # Llama 3's RoPE scaling (0: none; rope.py)
    rope_low_freq_factor: float = 1.0
    rope_high_freq_factor: float = 4.0
    rope_original_context: int = 0
    intermediate_size: int = 0  # MLP width (0: 4 x n_embd for GELU, about 8/3 x for SwiGLU)
    norm_eps: float = 0.0  # (0: RMSNorm 1e-6, LayerNorm 1e-5)
    gelu: Literal["exact", "tanh"] = "exact"  # GPT-2's is the tanh approximation

    @property
    def rope_scaling(self) -> tuple[float, float, float, int] | None:
        """(factor, low, high, original context) of Llama 3's RoPE scaling, or None."""
        if not self.rope_factor:
            return None
        high, original = self.rope_high_freq_factor, self.rope_original_context
        return self.rope_factor, self.rope_low_freq_factor, high, original


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
    imported: Imported = field(default_factory=Imported)

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> GPTConfig:
        """From ``as_dict``'s form, or the flat one of checkpoints written before ``imported``."""
        d = dict(d)
        inner = {f.name for f in fields(Imported)}
        nested = {**{k: d.pop(k) for k in inner & set(d)}, **d.pop("imported", {})}
        return cls(**d, imported=Imported(**nested))

    @property
    def kv_heads(self) -> int:
        return self.imported.n_kv_head or self.n_head

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    @property
    def mlp_hidden(self) -> int:
        if self.imported.intermediate_size:
            return self.imported.intermediate_size
        # SwiGLU uses 2/3 of 4x width in each of its two input projections: same parameter count
        swiglu = int(8 * self.n_embd / 3 / 64 + 0.999) * 64
        return swiglu if self.mlp == "swiglu" else 4 * self.n_embd


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x, (x.shape[-1],), self.weight, self.eps)


def make_norm(cfg: GPTConfig) -> nn.Module:
    eps = cfg.imported.norm_eps
    if cfg.norm == "rmsnorm":
        return RMSNorm(cfg.n_embd, eps or 1e-6)
    return nn.LayerNorm(cfg.n_embd, eps=eps or 1e-5, bias=cfg.bias)


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: GPTConfig, layer: int, rotary: Rotary | None) -> None:
        super().__init__()
        assert cfg.n_embd % cfg.n_head == 0 and cfg.n_head % cfg.kv_heads == 0
        self.layer, self.n_head, self.kv_heads = layer, cfg.n_head, cfg.kv_heads
        kv_width = 2 * cfg.kv_heads * cfg.head_dim  # grouped-query attention: fewer k, v heads
        self.qkv = nn.Linear(cfg.n_embd, cfg.n_embd + kv_width, bias=cfg.bias)
        self.proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.resid_drop = nn.Dropout(cfg.dropout)
        self.rotary = rotary

    def forward(self, x: torch.Tensor, pos: torch.Tensor, cache=None) -> torch.Tensor:
        """``x`` (B, T, C) at positions ``pos`` (T,). Without a cache, or for a prompt written
        into one from position 0: causal attention over these tokens. One new token with a cache:
        attention over every cached position up to its own (``cache``: decode.KVCache; ``pos``
        (B, 1) puts each row at its own position, as a server's requests are)."""
        b, t, c = x.shape
        d, kv = c // self.n_head, self.kv_heads
        q, k, v = self.qkv(x).split([c, kv * d, kv * d], dim=-1)
        q = q.view(b, t, self.n_head, d).transpose(1, 2)  # (B, H, T, D)
        k, v = (z.view(b, t, kv, d).transpose(1, 2) for z in (k, v))
        if self.rotary is not None:
            q, k = self.rotary(q, pos), self.rotary(k, pos)
        if cache is None or t > 1:
            if cache is not None:
                cache.write(self.layer, k, v, pos)
            # no dropout on the attention probabilities, only on the residual branches: fused
            # attention kernels run without it (and it cost 12% of a CPU training step)
            y = F.scaled_dot_product_attention(
                q, k, v, is_causal=t > 1, enable_gqa=kv != self.n_head
            )
        else:  # the query heads sharing a key/value head are grouped: the cache is read as it is
            keys, values = cache.write(self.layer, k, v, pos)
            scores = q.reshape(b, kv, self.n_head // kv, d).to(keys.dtype) @ keys.transpose(-1, -2)
            visible = torch.arange(keys.shape[2], device=x.device) <= pos.view(-1, 1, 1, 1)
            weights = (scores.float() * d**-0.5).masked_fill(~visible, float("-inf")).softmax(-1)
            y = (weights.to(values.dtype) @ values).reshape(b, self.n_head, 1, d).to(x.dtype)
        return self.resid_drop(self.proj(y.transpose(1, 2).reshape(b, t, c)))


class MLP(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.swiglu, self.gelu = cfg.mlp == "swiglu", cfg.imported.gelu
        hidden = cfg.mlp_hidden
        self.up = nn.Linear(cfg.n_embd, (2 if self.swiglu else 1) * hidden, bias=cfg.bias)
        self.down = nn.Linear(hidden, cfg.n_embd, bias=cfg.bias)
        self.drop = nn.Dropout(cfg.dropout)

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

    def forward(self, x, pos, cache=None):
        x = x + self.attn(self.norm1(x), pos, cache)
        return x + self.mlp(self.norm2(x))


class GPT(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        imp = cfg.imported
        rotary = Rotary(cfg.head_dim, cfg.block_size, imp.rope_theta, imp.rope_scaling)
        rotary = rotary if cfg.pos == "rope" else None
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.pos_emb = nn.Embedding(cfg.block_size, cfg.n_embd) if cfg.pos == "learned" else None
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg, i, rotary) for i in range(cfg.n_layer))
        self.norm = make_norm(cfg)
        self.head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        if cfg.tie_weights:
            self.head.weight = self.tok_emb.weight
        self.apply(self._init)
        self.grad_checkpoint = False  # train --grad-checkpoint: recompute each block in backward
        # GPT-2's scaled init: residual projections shrink with depth so the stream stays O(1)
        for name, p in self.named_parameters():
            if name.endswith(("attn.proj.weight", "mlp.down.weight")):
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def num_params(self, non_embedding: bool = True) -> int:
        n = sum(p.numel() for p in self.parameters())
        # weights frozen into buffers under LoRA (lora.freeze_into_buffers) count too
        n += sum(b.numel() for k, b in self.named_buffers() if k.endswith((".weight", ".bias")))
        if non_embedding and self.pos_emb is not None:
            n -= self.pos_emb.weight.numel()
        return n

    def forward(self, idx, targets=None, *, pos=None, cache=None, head=True):
        """``idx`` (B, T) token ids at positions ``pos`` (default ``0..T-1``): (logits (B, T,
        vocab), the mean next-token cross-entropy against ``targets`` (B, T), or None without).
        ``head=False``: the final hidden states (B, T, C) alone, for what needs fewer logits (the
        last position's, generating) or a loss computed outside (a large vocabulary's, chunked)."""
        t = idx.shape[1]
        if pos is None:
            if t > self.cfg.block_size:
                raise ValueError(f"{t} tokens exceed the context of {self.cfg.block_size}")
            pos = torch.arange(t, device=idx.device)
        x = self.tok_emb(idx)
        if self.pos_emb is not None:
            x = x + self.pos_emb(pos)
        x = self.drop(x)
        for block in self.blocks:
            if self.grad_checkpoint and self.training and torch.is_grad_enabled():
                # keep only each block's input; its activations are recomputed in backward
                x = torch.utils.checkpoint.checkpoint(block, x, pos, use_reentrant=False)
            else:
                x = block(x, pos, cache)
        x = self.norm(x)
        if not head:
            return x
        logits = self.head(x)
        if targets is None:
            return logits, None
        loss = F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), ignore_index=-100)
        return logits, loss

    def configure_optimizers(self, lr, weight_decay, betas=(0.9, 0.95), device=None):
        """AdamW with weight decay on matrices (weights, embeddings), none on vectors (norms,
        biases); fused (one kernel for all parameters) where PyTorch has that kernel."""
        params = [p for p in self.parameters() if p.requires_grad]
        groups = [
            {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
        ]
        device = torch.device(device) if device is not None else self.head.weight.device
        return torch.optim.AdamW(groups, lr=lr, betas=betas, fused=device.type in ("cuda", "cpu"))
