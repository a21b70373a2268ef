"""int8 weights for generation (``--weights int8``, CPU): a quarter of the matrices' bytes.

A cached token reads every weight once, so at batch 1 fewer weight bytes mean more tokens per
second. Every Linear layer (attention, MLP, the head; a tied head is untied first, the embedding
table stays as it is: a token reads one row of it) gets int8 weights with one symmetric scale per
output channel, by one of two kernels, chosen by what the CPU can run fast:

- ``weight-only`` (CPUs with AVX-512): :class:`Int8Linear`, PyTorch's weight-only int8 matrix
  product (``aten._weight_int8pack_mm``, the kernel gpt-fast uses on a CPU). The activations go
  in as bf16 and the product comes back in the input's dtype. It is one operator that
  ``torch.compile`` keeps inside the graph, so the compiled decode step runs with int8 weights.
- ``dynamic`` (other CPUs, where that kernel has no vectorized code):
  ``torch.ao.quantization.quantize_dynamic``, fbgemm's kernels with the activations quantized to
  int8 on the fly; eager only (its packed weights break a compiled graph).

NOTES.md has the measurements behind the choice (per layer and per token, both kernels, eager and
compiled).
"""

from __future__ import annotations

import warnings

import torch
from torch import nn
from torch.ao.nn.quantized.dynamic import Linear as DynamicInt8Linear
from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

KERNELS = ("weight-only", "dynamic")


class Int8Linear(nn.Module):
    """``y = (x @ W_q^T) * scale + bias`` with ``W_q`` int8 (``out x in``) and one bf16 scale per
    output channel: ``W ~= W_q * scale``, ``scale = max|W_row| / 127`` (rounded to bf16 first, so
    the stored scale is the one the weights were rounded with)."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        w = linear.weight.detach().float()
        scale = (w.abs().amax(dim=1).clamp(min=1e-12) / 127).to(torch.bfloat16)
        q = torch.round(w / scale.float()[:, None]).clamp(-127, 127).to(torch.int8)
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.register_buffer("weight", q.contiguous())
        self.register_buffer("scale", scale)
        bias = linear.bias
        self.register_buffer("bias", None if bias is None else bias.detach().float().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, self.in_features).to(torch.bfloat16)
        y = torch.ops.aten._weight_int8pack_mm(flat, self.weight, self.scale)
        y = y.reshape(*x.shape[:-1], self.out_features).to(x.dtype)
        return y if self.bias is None else y + self.bias.to(x.dtype)

    def extra_repr(self) -> str:
        bias = self.bias is not None
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={bias}"


def default_kernel() -> str:
    """``weight-only`` where the CPU has AVX-512 (the kernel's vectorized code), else
    ``dynamic``. A property of the machine, not a race: the same machine always picks the same
    kernel, so the same seed gives the same tokens."""
    return "weight-only" if "AVX512" in torch.backends.cpu.get_cpu_capability() else "dynamic"


def quantize(model: nn.Module, kernel: str | None = None) -> nn.Module:
    """``model`` (on the CPU) with every Linear layer int8, by ``kernel`` (one of
    :data:`KERNELS`; None: :func:`default_kernel`). A tied head is untied first: the head is
    quantized, the embedding lookup is not."""
    kernel = kernel or default_kernel()
    if kernel not in KERNELS:
        raise ValueError(f"int8 kernel {kernel!r}: use one of {', '.join(KERNELS)}")
    head, emb = getattr(model, "head", None), getattr(model, "tok_emb", None)
    if head is not None and emb is not None and head.weight is emb.weight:
        head.weight = nn.Parameter(head.weight.detach().clone())
    model.eval()
    if kernel == "dynamic":
        spec = {nn.Linear: per_channel_dynamic_qconfig}
        with warnings.catch_warnings():  # the API is used on purpose: NOTES.md says what follows
            warnings.filterwarnings("ignore", "torch.ao.quantization is deprecated", Warning)
            return quantize_dynamic(model, spec, dtype=torch.qint8)
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.Linear:
                setattr(parent, name, Int8Linear(child))
    return model


def kernel_of(model: nn.Module) -> str | None:
    """Which int8 kernel ``model``'s Linear layers run: one of :data:`KERNELS`, or None."""
    for module in model.modules():
        if isinstance(module, Int8Linear):
            return "weight-only"
        if isinstance(module, DynamicInt8Linear):
            return "dynamic"
    return None


def int8_bytes(model: nn.Module) -> int:
    """Bytes of the int8 layers' weights with their per-channel scales (and zero points) and
    biases: what a cached token reads of them."""
    total = 0
    for module in model.modules():
        if isinstance(module, Int8Linear):
            total += sum(b.numel() * b.element_size() for b in module.buffers())
        elif isinstance(module, DynamicInt8Linear):
            w = module.weight()
            channels = w.q_per_channel_scales().numel()  # float64 scales, int64 zero points
            bias = module.bias()
            total += w.numel() + channels * 16 + (0 if bias is None else bias.numel() * 4)
    return total
