"""Token streams on the device: random training windows, and whole-split evaluation windows."""

from __future__ import annotations

import math

import numpy as np
import torch

from austen_net.loss import linear_cross_entropy
from austen_net.tokenizer import Tokenizer
from shared.device import make_generator


def encode_stream(tok: Tokenizer, texts: list[str], device) -> torch.Tensor:
    """The texts' token ids, one after another, as int32 (half of int64's memory: 0.8 GB for a
    200 MB text); batches are widened to int64 as they are cut."""
    parts = [tok.encode_array(text) for text in texts]
    ids = parts[0] if len(parts) == 1 else np.concatenate(parts or [np.zeros(0, np.int32)])
    return torch.from_numpy(ids).to(device)


class RandomWindows:
    """Step -> micro-batches of (x, y) windows at random offsets, a pure function of (seed, step)."""

    def __init__(self, stream: torch.Tensor, block: int, batch: int, accum: int, seed: int) -> None:
        if len(stream) < block + 1:
            raise ValueError(
                f"the training text has {len(stream)} tokens, fewer than one window of {block}"
            )
        self.stream, self.block, self.batch, self.accum, self.seed = (
            stream,
            block,
            batch,
            accum,
            seed,
        )
        self.offsets = torch.arange(block + 1, device=stream.device)

    def __call__(self, step: int):
        g = make_generator(self.seed, step)
        # a window of block + 1 tokens starts anywhere in [0, len - block - 1]: randint's upper
        # bound is exclusive, so the last window (whose target is the last token) is drawn too
        starts = torch.randint(
            0, len(self.stream) - self.block, (self.accum, self.batch), generator=g
        )
        out = []
        for row in starts.to(self.stream.device):
            windows = self.stream[row[:, None] + self.offsets].long()
            out.append((windows[:, :-1], windows[:, 1:]))
        return out


def lm_loss(model, batch):
    """Mean next-token cross-entropy of a batch of windows: the model's own (``F.cross_entropy``)."""
    x, y = batch
    return model(x, y)[1], {}


def chunked_lm_loss(head_weight: torch.Tensor):
    """The same loss from the final hidden states a chunk of rows at a time (loss.py): for a large
    vocabulary (an imported Llama's 128,256 tokens) the whole logits tensor and its float32 copy
    would cost more memory than the rest of a LoRA step; ``head_weight``: the model's head."""

    def loss_fn(model, batch):
        x, y = batch
        hidden = model(x, head=False)
        return linear_cross_entropy(hidden.flatten(0, 1), head_weight, y.flatten()), {}

    return loss_fn


@torch.no_grad()
def total_nll(
    model, streams: list[torch.Tensor], block: int, batch: int, max_tokens: int = 0
) -> tuple[float, int]:
    """Summed NLL (nats) and predicted-token count over every stream, in non-overlapping windows.

    Each window sees the full context of its own tokens (no overlap); the first token of each
    stream is context only. Under the caller's autocast and ``torch.no_grad``. ``max_tokens`` (0: no limit) scores only that many tokens' worth of
    windows, spread evenly over the split and the same ones every time, so evaluations during
    training cost the same on a 200 MB text as on a novel (nanoGPT's ``eval_iters``).
    """
    model.eval()
    nll, count = 0.0, 0
    full, partial = [], []
    for s in streams:
        n = (len(s) - 1) // block
        if n:
            full.append(s[: n * block + 1].unfold(0, block + 1, block))
        rest = s[n * block :]
        if len(rest) > 1:
            partial.append(rest)
    windows = torch.cat(full) if full else None
    total = sum(len(s) - 1 for s in streams if len(s) > 1)
    if max_tokens and total > max_tokens and windows is not None:
        keep = max(1, max_tokens // block)
        picked = torch.linspace(0, len(windows) - 1, min(keep, len(windows))).round().long()
        windows, partial = windows[picked.to(windows.device)], []
    for i in range(0, len(windows) if windows is not None else 0, batch):
        w = windows[i : i + batch].long()
        nll += float(model(w[:, :-1], w[:, 1:])[1]) * w[:, 1:].numel()
        count += w[:, 1:].numel()
    for rest in partial:
        rest = rest.long()
        nll += float(model(rest[None, :-1], rest[None, 1:])[1]) * (len(rest) - 1)
        count += len(rest) - 1
    return nll, count


def bits_per_char(nll: float, chars: int) -> float:
    return nll / max(chars, 1) / math.log(2)


def predicted_chars(tok: Tokenizer, texts: list[str], streams: list[torch.Tensor]) -> int:
    """Characters covered by the predicted tokens: all but each stream's first token."""
    return sum(
        len(t) - len(tok.decode(s[:1].tolist())) for t, s in zip(texts, streams, strict=True)
    )
