"""Next-token cross-entropy straight from the last hidden states, without the (tokens, vocab)
logits ever existing at once.

The usual loss is ``F.cross_entropy(head(h), y)``: for Llama-3.2-1B's 128,256-token vocabulary and
512 tokens that is a 131 MB bf16 logits tensor, its 263 MB float32 copy, the 263 MB
log-probabilities kept for backward and a 263 MB gradient: about 0.9 GB at the loss, more than the
LoRA adapters, their optimizer and the checkpointed activations together. Here the rows go
through the head a chunk at a time, and each chunk's gradient is taken at once, since for
softmax cross-entropy it is closed-form:

    loss = mean_i ( logsumexp(z_i) - z_i[y_i] ),   z_i = W h_i
    d loss / d z_i = ( softmax(z_i) - onehot(y_i) ) / N
    d loss / d h_i = W^T (d loss / d z_i),   d loss / d W = sum_i (d loss / d z_i) h_i^T

so backward only scales the saved gradients by the incoming one. Peak memory at the loss is one
chunk's logits (about 64 MB) instead of the whole; the matrix products are the same ones autograd
would run, so nothing is recomputed (the idea of Liger-Kernel's fused linear cross-entropy). The
head's weight gradient is formed only when the weight trains (not under LoRA, whose head is
frozen). Targets equal to ``IGNORE`` (-100, as in ``F.cross_entropy``) are left out of the mean.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE = -100
CHUNK_ELEMENTS = 2**24  # logits computed at once: 64 MB in float32


class LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor):
        n, vocab = hidden.shape[0], weight.shape[0]
        kept = targets != IGNORE
        count = kept.sum().clamp(min=1)
        rows = max(1, CHUNK_ELEMENTS // vocab)
        want_h, want_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        grad_h = torch.zeros_like(hidden) if want_h else None
        grad_w = torch.zeros_like(weight, dtype=torch.float32) if want_w else None
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        for i in range(0, n, rows):
            h, y, keep = hidden[i : i + rows], targets[i : i + rows], kept[i : i + rows]
            z = F.linear(h, weight).float()  # (rows, vocab): the only logits alive
            lse = torch.logsumexp(z, dim=-1)
            safe = torch.where(keep, y, 0)
            total += ((lse - z.gather(1, safe[:, None])[:, 0]) * keep).sum()
            if want_h or want_w:
                g = torch.softmax(z, dim=-1)  # becomes d loss / d z (times N) in place
                g[torch.arange(len(y), device=g.device), safe] -= 1.0
                g *= keep[:, None] / count
                if not torch.is_autocast_enabled(h.device.type):  # (autocast casts for itself)
                    g = g.to(weight.dtype)
                if want_h:
                    grad_h[i : i + rows] = (g @ weight).to(hidden.dtype)
                if want_w:
                    grad_w += (g.t() @ h).float()
        ctx.save_for_backward(grad_h, grad_w)
        ctx.weight_dtype = weight.dtype
        return total / count

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        grad_h, grad_w = ctx.saved_tensors
        dh = grad_h * grad_out if grad_h is not None else None
        dw = (grad_w * grad_out).to(ctx.weight_dtype) if grad_w is not None else None
        return dh, dw, None


def linear_cross_entropy(
    hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor
) -> torch.Tensor:
    """Mean cross-entropy of ``hidden @ weight.T`` (rows, vocab) against ``targets`` (rows,),
    equal to ``F.cross_entropy(F.linear(hidden, weight).float(), targets)`` and its gradients."""
    return LinearCrossEntropy.apply(hidden, weight, targets)
