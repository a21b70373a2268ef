"""austen-net's GPT beside nanoGPT's model.py: a sweep of shapes, eager and compiled, one process.

    git clone https://github.com/karpathy/nanoGPT /tmp/nanoGPT     # outside this checkout
    uv run --package austen-net python tools/compare_nanogpt.py --nanogpt /tmp/nanoGPT/model.py

A training step is forward + backward + gradient clipping at 1.0 + AdamW, on the same random
tokens, for both models: ours through austen-net's ``Trainer`` (fused AdamW), nanoGPT's as its
train.py does it (its own ``configure_optimizers``). The points of the sweep:

- A: 4 layers, 4 heads, 128 wide, context 64, batch 12, vocabulary 65, dropout 0, betas
  (0.9, 0.99), fp32: nanoGPT's CPU recipe ("I only have a macbook"), on 1 thread and all threads;
- B: 6 layers, 6 heads, 384 wide, context 256, batch 8, vocabulary 8192, dropout 0.2, fp32;
- C: as B with batch 64 under bf16 autocast on the CPU (``austen-net bench``'s setting).

Each point runs eager and compiled (``torch.compile`` on both models; the compile time is
reported). The models alternate round by round so that machine drift hits both alike; the median
step time of ``--rounds`` rounds is reported, and ``ratio`` is nanoGPT's step time over ours (above
1: ours is faster). Our model runs in its default architecture (RoPE, RMSNorm, SwiGLU); ``--also-
gpt2-layout`` adds it in nanoGPT's own layout (learned positions, LayerNorm, GELU). With
``--generation``: tokens/s at shape B, batch 1, a 16-token prompt, greedy, 128 and 512 new tokens:
nanoGPT's ``generate`` (no cache), ours without and with the KV cache. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from austen_net.decode import generate
from austen_net.model import GPT, GPTConfig
from austen_net.windows import lm_loss
from shared.training import Trainer

POINTS = {
    "A": dict(n_layer=4, n_head=4, n_embd=128, block_size=64, dropout=0.0, batch=12, vocab=65),
    "B": dict(n_layer=6, n_head=6, n_embd=384, block_size=256, dropout=0.2, batch=8, vocab=8192),
    "C": dict(n_layer=6, n_head=6, n_embd=384, block_size=256, dropout=0.2, batch=64, vocab=8192),
}
BETAS = {"A": (0.9, 0.99), "B": (0.9, 0.95), "C": (0.9, 0.95)}


def load_nanogpt(path: str):
    spec = importlib.util.spec_from_file_location("nanogpt_model", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def shape_of(point: str) -> dict:
    return {k: v for k, v in POINTS[point].items() if k not in ("batch", "vocab")}


def nanogpt_step(ng, point: str, batch, compiled: bool, bf16: bool) -> Callable[[], None]:
    torch.manual_seed(0)
    p = POINTS[point]
    model = ng.GPT(ng.GPTConfig(vocab_size=p["vocab"], bias=False, **shape_of(point)))
    model.train()
    opt = model.configure_optimizers(0.1, 6e-4, BETAS[point], "cpu")
    run = torch.compile(model) if compiled else model
    x, y = batch
    ctx = (lambda: torch.autocast("cpu", torch.bfloat16)) if bf16 else contextlib.nullcontext

    def step() -> None:
        with ctx():
            _, loss = run(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def our_step(point: str, batch, compiled: bool, bf16: bool, **layout) -> Callable[[], None]:
    torch.manual_seed(0)
    p = POINTS[point]
    model = GPT(GPTConfig(vocab_size=p["vocab"], **shape_of(point), **layout))
    opt = model.configure_optimizers(6e-4, 0.1, betas=BETAS[point], device="cpu")
    trainer = Trainer(
        model,
        opt,
        device=torch.device("cpu"),
        precision="bf16" if bf16 else "fp32",
        clip_grad=1.0,
        compile=compiled,
    )
    return lambda: trainer.train_step([batch], lm_loss)


def measure(steps: dict[str, Callable[[], None]], rounds: int, per_round: int) -> dict:
    """Warm up (compiling, timed), then alternate the models round by round: median ms/step."""
    compile_s = {}
    for name, step in steps.items():
        t0 = time.perf_counter()
        step()
        compile_s[name] = time.perf_counter() - t0
        step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            t0 = time.perf_counter()
            for _ in range(per_round):
                step()
            times[name].append((time.perf_counter() - t0) / per_round * 1000)
    return {
        "ms_per_step": {k: round(statistics.median(v), 2) for k, v in times.items()},
        "ms_range": {k: [round(min(v), 2), round(max(v), 2)] for k, v in times.items()},
        "first_step_s": {k: round(v, 1) for k, v in compile_s.items()},
    }


def generation(ng) -> dict:
    """Tokens/s of greedy generation at shape B (batch 1), after an 8-token warm-up."""
    p = POINTS["B"]
    torch.manual_seed(0)
    nano = ng.GPT(ng.GPTConfig(vocab_size=p["vocab"], bias=False, **shape_of("B"))).eval()
    ours = GPT(GPTConfig(vocab_size=p["vocab"], **shape_of("B"))).eval()
    prompt = torch.randint(0, p["vocab"], (1, 16), generator=torch.Generator().manual_seed(0))

    def rate(fn, n: int) -> float:
        fn(8)
        t0 = time.perf_counter()
        fn(n)
        return round(n / (time.perf_counter() - t0), 1)

    out = {}
    with torch.no_grad():
        for n in (128, 512):
            out[f"gen_{n}_nanogpt"] = rate(lambda k: nano.generate(prompt, k, top_k=1), n)
            for cache in (False, True):
                out[f"gen_{n}_ours_{'cache' if cache else 'no_cache'}"] = rate(
                    lambda k, c=cache: list(generate(ours, prompt, k, temperature=0, use_cache=c)),
                    n,
                )
    return out


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nanogpt", required=True, help="path to nanoGPT's model.py")
    ap.add_argument("--points", nargs="*", default=["A1", "A", "B", "C"])
    ap.add_argument("--modes", nargs="*", default=["eager", "compiled"])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--per-round", type=int, default=3)
    ap.add_argument("--also-gpt2-layout", action="store_true")
    ap.add_argument("--generation", action="store_true")
    args = ap.parse_args()
    ng = load_nanogpt(args.nanogpt)
    cores = os.cpu_count() or 1
    out: dict = {"device": f"cpu ({cpu_name()}), {cores} cores", "torch": torch.__version__}
    rows = []
    for label in args.points:
        point = label[0]
        threads = 1 if label == "A1" else cores
        torch.set_num_threads(threads)
        p = POINTS[point]
        g = torch.Generator().manual_seed(0)
        data = torch.randint(0, p["vocab"], (p["batch"], p["block_size"] + 1), generator=g)
        batch = (data[:, :-1].contiguous(), data[:, 1:].contiguous())
        bf16 = point == "C"
        for mode in args.modes:
            compiled = mode == "compiled"
            steps = {
                "nanogpt": nanogpt_step(ng, point, batch, compiled, bf16),
                "ours": our_step(point, batch, compiled, bf16),
            }
            if args.also_gpt2_layout:
                steps["ours_gpt2_layout"] = our_step(
                    point, batch, compiled, bf16, pos="learned", norm="layernorm", mlp="gelu"
                )
            result = measure(steps, args.rounds, args.per_round)
            ms = result["ms_per_step"]
            rows.append(
                {
                    "point": label,
                    "threads": threads,
                    "mode": mode,
                    "precision": "bf16 autocast" if bf16 else "fp32",
                    **result,
                    "ratio": round(ms["nanogpt"] / ms["ours"], 3),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    out["sweep"] = rows
    if args.generation:
        torch.set_num_threads(cores)
        out.update(generation(ng))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
