"""``austen-net bench``: training tokens/s and MFU, and generation tokens/s with and without the KV cache.

Training is timed for our default architecture (RoPE, RMSNorm, SwiGLU) and, in the same run, for
the classic GPT-2 layout of the same model (learned positions, LayerNorm, GELU: nanoGPT's
architecture), so the cost of each choice is visible. Generation is timed at batch 1 after a
16-token prompt, for 128 and for 512 new tokens, with the KV cache and without it (the uncached
path runs the head on the last position only, as nanoGPT does, so the speed-up is the cache's own).

A cached token reads every weight once, so batch-1 generation is bound by memory bandwidth: the
bench measures the machine's read bandwidth (summing a 256 MB tensor) and reports
``generate_roofline_fraction`` = tokens/s x weight bytes / bandwidth for the cached fp32 path (1.0
is the limit), then the same cached generation with bf16 and with int8 weights
(``--weights``; int8 on the CPU only) and ``generate_int8_speedup`` over fp32.
"""

from __future__ import annotations

import copy
import statistics
import time

import torch

from austen_net.config import BenchConfig
from austen_net.data import lm_loss
from austen_net.inference import weight_bytes, with_weights
from austen_net.model import GPT, GPTConfig
from austen_net.presets import PRESETS
from shared.device import device_name, seed_everything, select_device
from shared.precision import autocast, resolve_precision
from shared.runs import Run
from shared.training import Trainer

# Dense bf16 tensor-core peaks (FLOP/s) for MFU.
BF16_PEAK = {
    "H200": 989e12,
    "H100": 989e12,
    "A100": 312e12,
    "L40S": 362e12,
    "A10": 125e12,
    "4090": 165e12,
    "3090": 71e12,
}


def peak_flops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in BF16_PEAK.items() if k in name), None)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_training(model: GPT, cfg: BenchConfig, device, steps: int) -> float:
    opt = model.configure_optimizers(1e-4, 0.1, device=device)
    trainer = Trainer(
        model, opt, device=device, precision=cfg.precision, clip_grad=1.0, compile=cfg.compile
    )
    block = model.cfg.block_size
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, model.cfg.vocab_size, (cfg.batch_size, block + 1), generator=g).to(device)
    batch = [(x[:, :-1], x[:, 1:])]
    for _ in range(3 if device.type == "cuda" else 1):  # warm-up (and compilation)
        trainer.train_step(batch, lm_loss)
    sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        trainer.train_step(batch, lm_loss)
    sync(device)
    return steps * cfg.batch_size * block / (time.perf_counter() - t0)


def time_generation(
    model: GPT, device, prompt: int, new_tokens: int, use_cache: bool, precision: str
) -> float:
    g = torch.Generator().manual_seed(1)
    idx = torch.randint(0, model.cfg.vocab_size, (1, prompt), generator=g).to(device)
    ctx = autocast(device, resolve_precision(precision, device))
    with ctx:
        for _ in model.generate(idx, 8, temperature=0, use_cache=use_cache):  # warm-up
            pass
        sync(device)
        t0 = time.perf_counter()
        for _ in model.generate(idx, new_tokens, temperature=0, use_cache=use_cache):
            pass
        sync(device)
    return new_tokens / (time.perf_counter() - t0)


def read_bandwidth(device: torch.device, megabytes: int = 256, repeats: int = 7) -> float:
    """Memory read bandwidth in bytes/s: the median time to sum a tensor far larger than caches."""
    x = torch.ones(megabytes * 2**20 // 4, device=device)
    times = []
    for _ in range(repeats + 1):
        sync(device)
        t0 = time.perf_counter()
        x.sum()
        sync(device)
        times.append(time.perf_counter() - t0)
    return x.numel() * 4 / statistics.median(times[1:])


def weights_generation(model: GPT, cfg: BenchConfig, device) -> dict:
    """Cached batch-1 generation (128 tokens, no autocast) with fp32, bf16 and int8 weights,
    against the memory-bandwidth limit."""
    bandwidth = read_bandwidth(device)
    fp32_tps = time_generation(model, device, cfg.prompt_tokens, 128, True, "fp32")
    out = {
        "memory_read_gb_per_s": round(bandwidth / 1e9, 2),
        "weight_bytes": weight_bytes(model),
        "generate_tokens_per_s_fp32": round(fp32_tps, 1),
        "generate_roofline_fraction": round(fp32_tps * weight_bytes(model) / bandwidth, 3),
    }
    kinds = ["bf16", *(["int8"] if device.type == "cpu" else [])]
    for kind in kinds:
        variant = with_weights(copy.deepcopy(model), kind)
        tps = time_generation(variant, device, cfg.prompt_tokens, 128, True, "fp32")
        out[f"generate_tokens_per_s_{kind}"] = round(tps, 1)
        out[f"weight_bytes_{kind}"] = weight_bytes(variant)
        out[f"generate_roofline_fraction_{kind}"] = round(
            tps * weight_bytes(variant) / bandwidth, 3
        )
    out["generate_int8_speedup"] = (
        round(out["generate_tokens_per_s_int8"] / fp32_tps, 2) if "int8" in kinds else None
    )
    return out


def run_bench(cfg: BenchConfig) -> int:
    seed_everything(cfg.seed)
    device = select_device(cfg.device)
    gpt_cfg = GPTConfig(vocab_size=cfg.vocab_size, **PRESETS[cfg.preset])
    gpt2_cfg = GPTConfig(
        vocab_size=cfg.vocab_size,
        pos="learned",
        norm="layernorm",
        mlp="gelu",
        **PRESETS[cfg.preset],
    )
    steps = cfg.train_steps or (20 if device.type == "cuda" else 3)
    run = Run("austen-net", cfg.out, cfg)
    model = GPT(gpt_cfg).to(device)
    train_tps = time_training(model, cfg, device, steps)
    gpt2_tps = time_training(GPT(gpt2_cfg).to(device), cfg, device, steps)
    peak = peak_flops(device)
    mfu = train_tps * model.flops_per_token() / peak if peak else None
    gen_model = GPT(gpt_cfg).to(device).eval()
    gen = {}
    for n in (128, cfg.new_tokens):
        for use_cache in (True, False):
            gen[n, use_cache] = time_generation(
                gen_model, device, cfg.prompt_tokens, n, use_cache, cfg.precision
            )
    long = cfg.new_tokens
    run.finish(
        {
            "device": device_name(device),
            "preset": cfg.preset,
            "params_m": round(model.num_params() / 1e6, 2),
            "vocab_size": cfg.vocab_size,
            "batch_size": cfg.batch_size,
            "context": gpt_cfg.block_size,
            "precision": cfg.precision,
            "compile": cfg.compile,
            "train_steps_timed": steps,
            "train_tokens_per_s": round(train_tps),
            "gpt2_layout_tokens_per_s": round(gpt2_tps),
            "mfu": None if mfu is None else round(mfu, 4),
            "generate_prompt_tokens": cfg.prompt_tokens,
            "generate_tokens_per_s_kv_cache_128": round(gen[128, True], 1),
            "generate_tokens_per_s_no_cache_128": round(gen[128, False], 1),
            "kv_cache_speedup_128": round(gen[128, True] / gen[128, False], 2),
            "generate_new_tokens": long,
            "generate_tokens_per_s_kv_cache": round(gen[long, True], 1),
            "generate_tokens_per_s_no_cache": round(gen[long, False], 1),
            "kv_cache_speedup": round(gen[long, True] / gen[long, False], 2),
            **weights_generation(gen_model, cfg, device),
        }
    )
    return 0
