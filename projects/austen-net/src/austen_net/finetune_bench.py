"""``austen-net bench --finetune``: one optimizer step of full fine-tuning, of ours with LoRA, and of
peft + transformers with the same rank and targets, side by side on random weights of a named
shape (built from the model's published config: nothing is downloaded).

Each mode runs in its own fresh process, so its peak memory is its own: on a CPU the process's
peak resident memory (``ru_maxrss``: the weights, gradients, optimizer state and activations,
plus Python and torch, about 0.4 GB; blocks from 4 MB up are returned to the OS when freed, in
every mode, as in ``austen-net train``), on CUDA ``torch.cuda.max_memory_allocated``. One warm-up
step, then ``steps`` timed steps; tokens/s counts the batch's tokens. Full fine-tuning keeps fp32
weights, gradients and two AdamW moments (16 bytes a parameter); when that cannot fit the
machine's memory it is skipped and says so. LoRA (both) keeps the base frozen in bf16 and fp32
adapters, AdamW over the adapters only.
"""

from __future__ import annotations

import multiprocessing
import os
import resource
import time

import torch

from austen_net.config import LORA_TARGETS
from austen_net.lora import LoRASettings, apply_lora, freeze_into_buffers
from austen_net.model import GPT, GPTConfig, Imported
from austen_net.windows import chunked_lm_loss
from shared.device import large_allocations_from_os

# the published configs (config.json on the Hub) of the shapes people fine-tune on a laptop
SHAPES = {
    "smollm2-135m": {
        "hidden_size": 576,
        "intermediate_size": 1536,
        "num_hidden_layers": 30,
        "num_attention_heads": 9,
        "num_key_value_heads": 3,
        "vocab_size": 49152,
        "rope_theta": 100000.0,
        "tie_word_embeddings": True,
    },
    "llama-3.2-1b": {  # its llama3 rope scaling changes no cost, so it is left out
        "hidden_size": 2048,
        "intermediate_size": 8192,
        "num_hidden_layers": 16,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "vocab_size": 128256,
        "rope_theta": 500000.0,
        "tie_word_embeddings": True,
    },
    "tiny": {  # for tests
        "hidden_size": 64,
        "intermediate_size": 96,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "vocab_size": 256,
        "rope_theta": 10000.0,
        "tie_word_embeddings": True,
    },
}


def our_config(shape: dict, context: int) -> GPTConfig:
    heads, kv = shape["num_attention_heads"], shape["num_key_value_heads"]
    return GPTConfig(
        vocab_size=shape["vocab_size"],
        block_size=context,
        n_layer=shape["num_hidden_layers"],
        n_head=heads,
        n_embd=shape["hidden_size"],
        dropout=0.0,
        bias=False,
        tie_weights=shape["tie_word_embeddings"],
        imported=Imported(
            n_kv_head=kv if kv != heads else 0,
            rope_theta=shape["rope_theta"],
            intermediate_size=shape["intermediate_size"],
        ),
    )


def built_in(dtype: torch.dtype, make):
    """``make()`` with new tensors created in ``dtype`` (a bf16 model never exists in fp32)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        return make()
    finally:
        torch.set_default_dtype(previous)


def ours(mode: str, shape: dict, context: int, rank: int):
    """Our model for ``full`` (fp32, every weight trains) or ``lora`` (bf16 base, adapters)."""
    cfg = our_config(shape, context)
    if mode == "full":
        model = GPT(cfg)
    else:
        model = built_in(torch.bfloat16, lambda: GPT(cfg))
        apply_lora(model, LoRASettings(rank=rank, alpha=2.0 * rank, targets=LORA_TARGETS))
        freeze_into_buffers(model)
    loss_fn = chunked_lm_loss(model.head.weight)  # as train's, under LoRA
    return model, lambda ids: loss_fn(model, (ids[:, :-1], ids[:, 1:]))[0]


def theirs(shape: dict, rank: int):
    """transformers' Llama in bf16 with peft's LoRA of the same rank and targets."""
    import peft  # optional: the finetune extra
    import transformers

    config = transformers.LlamaConfig(max_position_embeddings=4096, **shape)
    model = built_in(torch.bfloat16, lambda: transformers.LlamaForCausalLM(config))
    lora = peft.LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=list(LORA_TARGETS))
    model = peft.get_peft_model(model, lora)
    return model, lambda ids: model(input_ids=ids[:, :-1], labels=ids[:, :-1]).loss


def measure(
    mode: str, shape_name: str, context: int, batch: int, rank: int, steps: int, device, gc: bool
):
    """One warm-up step and ``steps`` timed steps of ``mode``: (peak GB, tokens/s). ``gc``:
    activation checkpointing per block (ours: ``--grad-checkpoint``; transformers' own)."""
    torch.manual_seed(0)
    if device.type == "cpu":  # as austen-net train does, for every mode alike
        large_allocations_from_os()
    shape = SHAPES[shape_name]
    model, loss_of = theirs(shape, rank) if mode == "peft" else ours(mode, shape, context, rank)
    if gc and mode == "peft":
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    elif gc:
        model.grad_checkpoint = True
    model.to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    ids = torch.randint(0, shape["vocab_size"], (batch, context + 1), device=device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for _ in range(steps + 1):
        t0 = time.perf_counter()
        loss = loss_of(ids)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - t0)
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) / 1e9
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9  # KiB on Linux
    return round(peak, 2), round(batch * context * steps / sum(times[1:]), 1)


def child(queue, *args) -> None:
    try:
        queue.put(("ok", measure(*args)))
    except Exception as exc:  # reported to the parent, which names the mode that failed
        queue.put(("error", f"{exc.__class__.__name__}: {str(exc)[:300]}"))


def in_fresh_process(*args):
    """``measure`` in a spawned process: its peak memory is that mode's alone."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=child, args=(queue, *args))
    process.start()
    process.join()
    if process.exitcode != 0 or queue.empty():
        return None, None, f"the process ended with status {process.exitcode} (out of memory?)"
    status, value = queue.get()
    return (*value, None) if status == "ok" else (None, None, value)


def full_fits(shape: dict, device) -> bool:
    """Full fine-tuning's 16 bytes a parameter, with room for activations, fit this machine."""
    h, i, n, v = (
        shape[k] for k in ("hidden_size", "intermediate_size", "num_hidden_layers", "vocab_size")
    )
    kv = h * shape["num_key_value_heads"] // shape["num_attention_heads"]
    params = n * (2 * h * h + 2 * h * kv + 3 * h * i) + v * h
    if device.type == "cuda":
        total = torch.cuda.get_device_properties(device).total_memory
    else:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return params * 16 * 1.25 < total


def finetune_bench(
    shape_name: str, context: int, batch: int, rank: int, steps: int, device, gc: bool = False
) -> dict:
    """The contract's keys: ``finetune_shape``, ``full_peak_gb``, ``full_tokens_per_s``,
    ``lora_peak_gb``, ``lora_tokens_per_s``, ``peft_peak_gb``, ``peft_tokens_per_s``."""
    out = {
        "finetune_shape": shape_name,
        "finetune_context": context,
        "finetune_batch": batch,
        "lora_rank": rank,
        "lora_targets": list(LORA_TARGETS),
        "timed_steps": steps,
        "grad_checkpoint": gc,
        # the allocator setting every mode's process ran with (shared.device)
        "cpu_large_allocations": "from the OS from 4 MB" if device.type == "cpu" else None,
    }
    for mode in ("full", "lora", "peft"):
        if mode == "full" and not full_fits(SHAPES[shape_name], device):
            peak, tps, why = (
                None,
                None,
                "skipped: 16 bytes a parameter exceed this machine's memory",
            )
        else:
            peak, tps, why = in_fresh_process(
                mode, shape_name, context, batch, rank, steps, device, gc
            )
        out[f"{mode}_peak_gb"], out[f"{mode}_tokens_per_s"] = peak, tps
        if why:
            out[f"{mode}_note"] = why
    if out["lora_tokens_per_s"] and out["peft_tokens_per_s"]:
        out["lora_speed_vs_peft"] = round(out["lora_tokens_per_s"] / out["peft_tokens_per_s"], 3)
    return out
