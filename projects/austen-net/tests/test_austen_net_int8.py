"""int8 weights: each kernel stays close to the fp32 model, reads a quarter of its matrix bytes,
and the machine's kernel is a property of the machine."""

import copy

import pytest
import torch
from torch import nn

from austen_net import int8
from austen_net.inference import weight_bytes, with_weights
from austen_net.model import GPT, GPTConfig


def small() -> GPT:
    torch.manual_seed(0)
    cfg = dict(vocab_size=64, block_size=32, n_layer=2, n_head=4, n_embd=64, dropout=0.0)
    return GPT(GPTConfig(**cfg)).eval()


def test_int8_linear_matches_the_fp32_product_within_its_rounding():
    torch.manual_seed(0)
    linear = nn.Linear(96, 80, bias=True)
    q = int8.Int8Linear(linear)
    assert q.weight.dtype == torch.int8 and q.scale.shape == (80,)
    # the stored weights times their scales are the layer's weights to half a step
    step = q.scale.float()[:, None]
    assert (q.weight.float() * step - linear.weight).abs().le(step * 0.5 + 1e-6).all()
    x = torch.randn(3, 5, 96)
    exact = linear(x)
    got = q(x)
    assert got.shape == exact.shape and got.dtype == x.dtype
    rel = (got - exact).norm() / exact.norm()
    assert 0 < rel < 0.02, rel  # int8 weights and bf16 activations: close, not exact


@pytest.mark.parametrize("kernel", int8.KERNELS)
def test_each_kernel_keeps_the_models_predictions(kernel):
    model = small()
    q = with_weights(copy.deepcopy(model), "int8", int8_kernel=kernel)
    assert int8.kernel_of(q) == kernel and int8.kernel_of(model) is None
    assert model.head.weight is model.tok_emb.weight  # tied; int8 unties: the lookup stays fp32
    assert q.tok_emb.weight.dtype == torch.float32 and torch.equal(
        q.tok_emb.weight, model.head.weight
    )
    idx = torch.randint(0, 64, (2, 24), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        p, pq = model(idx)[0].softmax(-1), q(idx)[0].softmax(-1)
    assert (p - pq).abs().max() < 0.02
    # the matrices in a quarter of their bytes, plus the scales (fbgemm's: 16 bytes a channel, a
    # lot beside 64 int8 weights) and the fp32 norms; the embedding row is not counted
    assert 0.24 < weight_bytes(q) / weight_bytes(model) < 0.35


def test_the_default_kernel_follows_the_cpu(monkeypatch):
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
    assert int8.default_kernel() == "weight-only"
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    assert int8.default_kernel() == "dynamic"
    with pytest.raises(ValueError, match="weight-only, dynamic"):
        int8.quantize(small(), "int4")
