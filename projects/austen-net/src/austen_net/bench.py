"""``austen-net bench``: training tokens/s and MFU, and generation tokens/s with and without the KV cache.

Training is timed for our default architecture (RoPE, RMSNorm, SwiGLU) and, in the same run, for
the classic GPT-2 layout of the same model (learned positions, LayerNorm, GELU: nanoGPT's
architecture), so the cost of each choice is visible. Generation is timed at batch 1 after a
16-token prompt, for 128 and for 512 new tokens, with the KV cache and without it (the uncached
path runs the head on the last position only, as nanoGPT does, so the speed-up is the cache's own).

A cached token reads every weight once, so batch-1 generation is bound by memory bandwidth: the
bench measures the machine's read bandwidth (summing a 256 MB tensor) and reports
``generate_roofline_fraction`` = tokens/s x weight bytes / bandwidth for the cached fp32 path (1.0
is the limit; weights that partly stay in a CPU's caches can pass it), the compiled fixed-shape
decode step beside it with each of its two kernels (``generate_tokens_per_s_compiled_blas``, the
library's one-row product; ``_compiled_reduction``, ``decode.RowReduction``) and the faster of
the two (``generate_tokens_per_s_compiled``, its compile time), transformers' own
``generate`` on the model ``export`` writes from the same weights, and the same cached generation
with bf16 and with int8 weights (``--weights``; int8 on the CPU only, by the kernel the machine
gets: ``generate_int8_kernel``), each eager and compiled (``_compiled``; fbgemm's dynamic int8 runs
eagerly only), all interleaved round by round, and ``generate_int8_speedup``: the fastest int8 path
over the fp32 eager path; and four samples drawn in one batch against one after another
(``generate_batched_speedup``). On a CPU the machine is named (``cpu_vendor``, ``cpu_model``,
``cpu_capability``, ``cpu_flags``, ``cpu_blas``) with the library each path ran in
(``generate_kernels``): the same figures differ from an Intel Xeon to an AMD EPYC.
"""

from __future__ import annotations

import copy
import statistics
import time

import torch

from austen_net import int8
from austen_net.config import BenchConfig
from austen_net.decode import KERNELS, compiled_decoder, generate
from austen_net.finetune_bench import finetune_bench
from austen_net.inference import weight_bytes, with_weights
from austen_net.model import GPT, GPTConfig
from austen_net.presets import PRESETS
from austen_net.windows import lm_loss
from shared.device import (
    autocast,
    compiles,
    cpu_facts,
    device_name,
    resolve_precision,
    seed_everything,
    select_device,
)
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


def flops_per_token(model: GPT) -> float:
    """Training FLOPs per token (forward + backward), as in the PaLM/nanoGPT estimate."""
    c = model.cfg
    return 6 * model.num_params() + 12 * c.n_layer * c.n_embd * c.block_size


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
        model,
        opt,
        device=device,
        precision=cfg.precision,
        clip_grad=1.0,
        compile=compiles(cfg.compile, device),
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


def prompt_ids(model: GPT, prompt: int, device, rows: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, model.cfg.vocab_size, (1, prompt), generator=g)
    return ids.repeat(rows, 1).to(device)


def time_generation(
    model: GPT,
    device,
    prompt: int,
    new_tokens: int,
    use_cache: bool,
    precision: str,
    step=None,
    rows: int = 1,
) -> float:
    """Tokens per second, all rows together: ``rows`` samples of ``new_tokens`` greedy tokens
    each, drawn in one batch."""
    idx = prompt_ids(model, prompt, device, rows)
    ctx = autocast(device, resolve_precision(precision, device))
    with ctx:
        for _ in generate(model, idx, 8, temperature=0, use_cache=use_cache, step=step):  # warm-up
            pass
        sync(device)
        t0 = time.perf_counter()
        for _ in generate(model, idx, new_tokens, temperature=0, use_cache=use_cache, step=step):
            pass
        sync(device)
    return rows * new_tokens / (time.perf_counter() - t0)


def batched_generation(model: GPT, device, prompt: int, rows: int = 4, repeats: int = 3) -> dict:
    """``generate --num-samples 4``: four samples drawn in one batch against one after another
    (eager, fp32, cached, 128 tokens each), interleaved round by round; medians. A batch reads
    each weight once for all its rows, so at batch 1's memory-bound speed it is nearly free."""
    one, batched = [], []
    for _ in range(repeats):
        one.append(time_generation(model, device, prompt, 128, True, "fp32"))
        batched.append(time_generation(model, device, prompt, 128, True, "fp32", rows=rows))
    one_tps, batched_tps = statistics.median(one), statistics.median(batched)
    return {
        "generate_batch_samples": rows,
        "generate_tokens_per_s_batched": round(batched_tps, 1),
        "generate_tokens_per_s_batched_per_sample": round(batched_tps / rows, 1),
        "generate_batched_speedup": round(batched_tps / one_tps, 2),
    }


def timed_compile(model: GPT, device, prompt: int, kernel: str = "blas"):
    """(the compiled decode step, the seconds its compile took: paid at the second token), or
    (None, None) for weights that run eagerly."""
    step = compiled_decoder(model, kernel=kernel)
    if step is None:
        return None, None
    idx = prompt_ids(model, prompt, device)
    t0 = time.perf_counter()
    for _ in generate(model, idx, 2, temperature=0, step=step):
        pass
    sync(device)
    return step, time.perf_counter() - t0


def transformers_generator(model: GPT, device, prompt: int):
    """A callable timing transformers' own ``generate`` (greedy, KV cache, batch 1, 128 new
    tokens) on the model ``export`` writes from these weights; None without the export extra."""
    try:  # the export extra: transformers
        from transformers.utils import logging as hf_logging  # optional: the export extra

        from austen_net.export import gpt2_model, layout_of, llama_model  # the export extra
    except ImportError:
        return None
    hf_logging.set_verbosity_error()
    hf, weights = (llama_model if layout_of(model) == "llama" else gpt2_model)(model)
    with torch.no_grad():
        hf.load_state_dict({k: v.detach().clone() for k, v in weights.items()}, strict=False)
    hf.tie_weights()
    hf = hf.to(device).eval()
    idx = prompt_ids(model, prompt, device)
    kwargs = dict(do_sample=False, eos_token_id=None, pad_token_id=0)

    @torch.no_grad()
    def timed(new_tokens: int = 128) -> float:
        hf.generate(idx, max_new_tokens=8, min_new_tokens=8, **kwargs)  # warm-up
        sync(device)
        t0 = time.perf_counter()
        out = hf.generate(idx, max_new_tokens=new_tokens, min_new_tokens=new_tokens, **kwargs)
        sync(device)
        return (out.shape[1] - idx.shape[1]) / (time.perf_counter() - t0)

    return timed


def side_by_side(paths: dict, theirs, device, prompt: int, rounds: int = 3) -> dict:
    """Tokens/s of every path (name -> (model, compiled step or None)) and of transformers'
    ``generate`` (``theirs``, or None): the same prompt and 128 greedy tokens, interleaved round
    by round, the median of each."""
    runs: dict[str, list[float]] = {name: [] for name in [*paths, "transformers"]}
    for _ in range(rounds):
        for name, (model, step) in paths.items():
            runs[name].append(time_generation(model, device, prompt, 128, True, "fp32", step))
        if theirs is not None:
            runs["transformers"].append(theirs())
    return {k: statistics.median(v) if v else None for k, v in runs.items()}


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


def generation_paths(kinds: dict, device, prompt: int) -> tuple[dict, dict]:
    """Every path to time, name -> (model, step): each precision eager, and compiled with each
    kernel where it compiles; and each compile's seconds."""
    paths, compile_seconds = {}, {}
    for kind, variant in kinds.items():
        paths[kind] = (variant, None)
        for kernel in KERNELS:
            step, compile_seconds[kind, kernel] = timed_compile(variant, device, prompt, kernel)
            if step is not None:
                paths[f"{kind}_compiled_{kernel}"] = (variant, step)
    return paths, compile_seconds


def weights_generation(model: GPT, cfg: BenchConfig, device) -> dict:
    """Cached batch-1 generation (128 tokens, no autocast) with fp32, bf16 and int8 weights, each
    eager and through the compiled decode step, beside transformers' ``generate`` on the same
    weights, against the memory-bandwidth limit."""
    bandwidth = read_bandwidth(device)
    kinds = {"fp32": model, "bf16": with_weights(copy.deepcopy(model), "bf16")}
    if device.type == "cpu":
        kinds["int8"] = with_weights(copy.deepcopy(model), "int8")
    paths, compile_seconds = generation_paths(kinds, device, cfg.prompt_tokens)
    tps = side_by_side(
        paths, transformers_generator(model, device, cfg.prompt_tokens), device, cfg.prompt_tokens
    )
    used = {}  # each precision's faster compiled kernel: what the compiled path figures are
    for kind in kinds:
        timed = {k: tps[f"{kind}_compiled_{k}"] for k in KERNELS if f"{kind}_compiled_{k}" in tps}
        if timed:
            used[kind] = max(timed, key=timed.get)
            tps[f"{kind}_compiled"] = timed[used[kind]]
    nbytes = {kind: weight_bytes(variant) for kind, variant in kinds.items()}

    def rate(name: str) -> float | None:
        return None if tps.get(name) is None else round(tps[name], 1)

    def roofline(name: str) -> float | None:
        kind = name.split("_")[0]
        return None if tps.get(name) is None else round(tps[name] * nbytes[kind] / bandwidth, 3)

    fp32, compiled, theirs = tps["fp32"], tps["fp32_compiled"], tps["transformers"]
    out = {
        "memory_read_gb_per_s": round(bandwidth / 1e9, 2),
        "weight_bytes": nbytes["fp32"],
        "generate_tokens_per_s_fp32": rate("fp32"),
        "generate_roofline_fraction": roofline("fp32"),
        # the compiled step with the faster of its two kernels (next keys: each)
        "generate_tokens_per_s_compiled": rate("fp32_compiled"),
        "generate_roofline_fraction_compiled": roofline("fp32_compiled"),
        **{f"generate_tokens_per_s_compiled_{k}": rate(f"fp32_compiled_{k}") for k in KERNELS},
        **{
            f"generate_roofline_fraction_compiled_{k}": roofline(f"fp32_compiled_{k}")
            for k in KERNELS
        },
        "generate_compile_seconds": round(compile_seconds["fp32", used["fp32"]], 1),
        "generate_compiled_speedup": round(compiled / fp32, 2),
        "transformers_generate_tokens_per_s": rate("transformers"),
        "generate_speedup_over_transformers": (
            None if theirs is None else round(max(fp32, compiled) / theirs, 2)
        ),
    }
    for kind in [k for k in kinds if k != "fp32"]:
        out[f"weight_bytes_{kind}"] = nbytes[kind]
        names = (kind, f"{kind}_compiled", *(f"{kind}_compiled_{k}" for k in KERNELS))
        for name in names:
            if name in tps or name == f"{kind}_compiled":
                out[f"generate_tokens_per_s_{name}"] = rate(name)
                out[f"generate_roofline_fraction_{name}"] = roofline(name)
    out["generate_int8_kernel"] = int8.kernel_of(kinds["int8"]) if "int8" in kinds else None
    out["generate_kernels"] = kernels(device, out["generate_int8_kernel"], used)
    fastest_int8 = max((v for k, v in tps.items() if k.startswith("int8") and v), default=None)
    out["generate_int8_speedup"] = None if fastest_int8 is None else round(fastest_int8 / fp32, 2)
    return out


def kernels(device: torch.device, int8_kernel: str | None, used: dict) -> dict:
    """What each precision's products ran in: eager, the library's (Inductor, without
    max-autotune, calls the same library for a product); compiled, the faster of that and the
    decode step's own reduction (``decode.RowReduction``), named."""
    if device.type != "cpu":
        library = {"fp32": f"{device.type} BLAS", "bf16": f"{device.type} BLAS", "int8": None}
    else:
        facts = cpu_facts()
        bf16_isa = next((f for f in ("amx_bf16", "avx512_bf16") if f in facts["cpu_flags"]), None)
        library = {
            "fp32": f"{facts['cpu_blas']} sgemv (aten linear)",
            "bf16": f"oneDNN matmul ({bf16_isa or 'no bf16 instructions: converted in software'})",
            "int8": None if int8_kernel is None else f"{int8_kernel} ({int8.__name__})",
        }
    reduction = "Inductor's loop of (W * x).sum(-1) (decode.RowReduction)"
    out: dict = {}
    for kind, lib in library.items():
        out[kind] = lib
        if kind in used:
            out[f"{kind}_compiled"] = reduction if used[kind] == "reduction" else lib
    return out


def machine_facts(device: torch.device) -> dict:
    return {"device": device_name(device), **(cpu_facts() if device.type == "cpu" else {})}


def run_finetune_bench(cfg: BenchConfig, device) -> int:
    """``bench --finetune``: see ``austen_net.finetune_bench``."""
    steps = cfg.finetune_steps or (5 if device.type == "cuda" else 1)
    run = Run("austen-net", cfg.out, cfg)
    result = finetune_bench(
        cfg.shape, cfg.context, cfg.finetune_batch, cfg.rank, steps, device, cfg.grad_checkpoint
    )
    run.finish({**machine_facts(device), **result})
    return 0


def run_bench(cfg: BenchConfig) -> int:
    seed_everything(cfg.seed)
    device = select_device(cfg.device)
    if cfg.finetune:
        return run_finetune_bench(cfg, device)
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
    mfu = train_tps * flops_per_token(model) / peak if peak else None
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
            **machine_facts(device),
            "preset": cfg.preset,
            "params_m": round(model.num_params() / 1e6, 2),
            "vocab_size": cfg.vocab_size,
            "batch_size": cfg.batch_size,
            "context": gpt_cfg.block_size,
            "precision": cfg.precision,
            "compile": compiles(cfg.compile, device),
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
            **batched_generation(gen_model, device, cfg.prompt_tokens),
        }
    )
    return 0
