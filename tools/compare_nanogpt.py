"""austen-net's GPT beside nanoGPT's model.py, in one process, at nanoGPT's shape.

    git clone https://github.com/karpathy/nanoGPT /tmp/nanoGPT     # outside this checkout
    PYTHONPATH=shared/src:projects/austen-net/src python tools/compare_nanogpt.py \\
        --nanogpt /tmp/nanoGPT/model.py [--threads 2] [--rounds 5] [--batch 8]

Training: forward + backward + AdamW step on the same random tokens (6 layers, 6 heads, 384 wide,
context 256, vocab 8192, dropout 0.2, fp32), the models interleaved round by round so that machine
drift hits all of them alike; the median of the rounds. Our GPT runs twice: its default
architecture (RoPE, RMSNorm, SwiGLU) and the classic GPT-2 layout (learned positions, LayerNorm,
GELU), which is nanoGPT's architecture. Generation: batch 1, a 16-token prompt, greedy, 128 and
512 new tokens: nanoGPT's generate (no cache, head on the last position), ours without and with the
KV cache. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import statistics
import time

import torch

from austen_net.data import lm_loss
from austen_net.model import GPT, GPTConfig
from shared.training import Trainer

SHAPE = dict(n_layer=6, n_head=6, n_embd=384, block_size=256, dropout=0.2)
VOCAB = 8192


def load_nanogpt(path: str):
    spec = importlib.util.spec_from_file_location("nanogpt_model", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nanogpt", required=True, help="path to nanoGPT's model.py")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--batch", type=int, default=8)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ng = load_nanogpt(args.nanogpt)

    def ours(**kw) -> GPT:
        torch.manual_seed(0)
        return GPT(GPTConfig(vocab_size=VOCAB, **{**SHAPE, **kw}))

    torch.manual_seed(0)
    models = {
        "nanogpt": ng.GPT(ng.GPTConfig(vocab_size=VOCAB, bias=False, **SHAPE)),
        "ours": ours(),
        "ours_gpt2_layout": ours(pos="learned", norm="layernorm", mlp="gelu"),
    }
    g = torch.Generator().manual_seed(0)
    data = torch.randint(0, VOCAB, (args.batch, SHAPE["block_size"] + 1), generator=g)
    x, y = data[:, :-1].contiguous(), data[:, 1:].contiguous()

    def step_of(name: str, model):
        model.train()
        if name == "nanogpt":
            opt = model.configure_optimizers(0.1, 6e-4, (0.9, 0.95), "cpu")

            def step() -> None:
                _, loss = model(x, y)
                loss.backward()
                opt.step()
                opt.zero_grad(set_to_none=True)

            return step
        opt = model.configure_optimizers(6e-4, 0.1, device="cpu")
        trainer = Trainer(model, opt, device=torch.device("cpu"))
        return lambda: trainer.train_step([(x, y)], lm_loss)

    steps = {name: step_of(name, m) for name, m in models.items()}
    for step in steps.values():
        step(), step()  # warm-up
    rates: dict[str, list[float]] = {name: [] for name in steps}
    tokens = 3 * args.batch * SHAPE["block_size"]
    for _ in range(args.rounds):
        for name, step in steps.items():
            t0 = time.perf_counter()
            for _ in range(3):
                step()
            rates[name].append(tokens / (time.perf_counter() - t0))
    out: dict = {
        "device": f"cpu ({platform.processor() or platform.machine()}), {args.threads} threads",
        "batch": args.batch,
        **{f"train_tokens_per_s_{k}": round(statistics.median(v)) for k, v in rates.items()},
    }
    out["train_ratio_ours_vs_nanogpt"] = round(
        out["train_tokens_per_s_ours"] / out["train_tokens_per_s_nanogpt"], 3
    )

    prompt = torch.randint(0, VOCAB, (1, 16), generator=g)

    def rate(fn, n: int) -> float:
        fn(8)
        t0 = time.perf_counter()
        fn(n)
        return round(n / (time.perf_counter() - t0), 1)

    for m in models.values():
        m.eval()
    with torch.no_grad():
        for n in (128, 512):
            out[f"gen_{n}_nanogpt"] = rate(
                lambda k: models["nanogpt"].generate(prompt, k, top_k=1), n
            )
            for cache in (False, True):
                out[f"gen_{n}_ours_{'cache' if cache else 'no_cache'}"] = rate(
                    lambda k, c=cache: list(
                        models["ours"].generate(prompt, k, temperature=0, use_cache=c)
                    ),
                    n,
                )
    print(json.dumps(out))


if __name__ == "__main__":
    main()
