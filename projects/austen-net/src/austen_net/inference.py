"""Loading a trained austen-net model and scoring text with it (generate, evaluate, demo).

A checkpoint is data and may be damaged or crafted: its model settings are checked against sane
bounds and against the shapes of its weights before anything is built, and its tokenizer entry is
checked before sentencepiece reads it; anything wrong is one ``UserError``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from austen_net import PROJECT, int8
from austen_net.lora import (
    apply_lora,
    fingerprint,
    freeze_into_buffers,
    merge_lora,
    settings_from,
    thaw,
)
from austen_net.model import GPT, GPTConfig, Imported
from austen_net.pretrained import load_pretrained
from austen_net.tokenizer import (
    MAX_TOKENIZER_BYTES,
    BPETokenizer,
    CharTokenizer,
    HFTokenizer,
    Tokenizer,
)
from austen_net.windows import bits_per_char, predicted_chars, total_nll
from shared.checkpoint import (
    check_weights_fit,
    load_checkpoint,
    model_from_checkpoint,
    refuse_if_damaged,
    settings_from_checkpoint,
)
from shared.device import autocast, large_allocations_from_os, resolve_precision
from shared.errors import UserError

CHECKPOINT_KEYS = ("model", "model_config", "tokenizer", "step", "config")

# far above anything trained here (the default preset: 8 layers, 512 wide, context 512, 8192
# tokens), far below what would exhaust a machine's memory before the weights are checked
CONFIG_BOUNDS = {
    "vocab_size": (2, 1 << 20),
    "block_size": (1, 1 << 16),
    "n_layer": (1, 1024),
    "n_head": (1, 1024),
    "n_embd": (2, 1 << 15),
    "dropout": (0.0, 1.0),
}
IMPORTED_BOUNDS = {
    "n_kv_head": (0, 1024),
    "rope_theta": (1.0, 1e12),
    "rope_factor": (0.0, 1e4),
    "rope_low_freq_factor": (1e-6, 1e4),
    "rope_high_freq_factor": (1e-6, 1e4),
    "rope_original_context": (0, 1 << 24),
    "intermediate_size": (0, 1 << 18),
    "norm_eps": (0.0, 1.0),
}


def checked_config(state: dict, path: Path | str) -> GPTConfig:
    """The checkpoint's ``GPTConfig``, refused if it is not one this code could have written (in
    ``GPTConfig.as_dict``'s form, or the flat one of checkpoints written before ``imported``)."""
    raw = state["model_config"]
    if not isinstance(raw, dict) or not isinstance(raw.get("imported", {}), dict):
        raise UserError(f"{path}: its model_config is not one this code writes")
    names = {f.name for f in dataclasses.fields(Imported)}
    outer = {k: v for k, v in raw.items() if k not in names and k != "imported"}
    inner = {**{k: v for k, v in raw.items() if k in names}, **raw.get("imported", {})}
    what = "its model_config"
    imported = settings_from_checkpoint(Imported, inner, IMPORTED_BOUNDS, path, what)
    cfg = settings_from_checkpoint(GPTConfig, outer, CONFIG_BOUNDS, path, what)
    cfg = dataclasses.replace(cfg, imported=imported)
    if cfg.n_embd % cfg.n_head or (cfg.n_embd // cfg.n_head) % 2 or cfg.n_head % cfg.kv_heads:
        raise UserError(f"{path}: n_embd {cfg.n_embd} does not split into {cfg.n_head} heads")
    if imported.rope_factor and not imported.rope_high_freq_factor > imported.rope_low_freq_factor:
        raise UserError(f"{path}: its RoPE scaling divides by zero (high <= low frequency factor)")
    weights = state["model"]
    if not isinstance(weights, dict) or not all(isinstance(k, str) for k in weights):
        raise UserError(f"{path}: its model weights are not a mapping of names to tensors")
    layers = {k.split(".")[1] for k in weights if k.startswith("blocks.") and k.count(".") > 1}
    if len(layers) != cfg.n_layer:
        raise UserError(
            f"{path}: its settings say {cfg.n_layer} layers, its weights hold {len(layers)}"
        )
    return cfg


def checked_tokenizer(state: dict, path: Path | str, vocab_size: int) -> Tokenizer:
    """The checkpoint's tokenizer, refused (one message) if its entry is damaged."""
    entry = state["tokenizer"]
    bad = f"{path}: its tokenizer is damaged"
    if not isinstance(entry, dict) or entry.get("kind") not in ("bpe", "char", "hf"):
        raise UserError(f"{bad} (no tokenizer kind 'bpe', 'char' or 'hf')")
    if entry["kind"] == "hf":
        tok = hf_tokenizer_of(entry, bad)
    elif entry["kind"] == "char":
        chars = entry.get("chars")
        if not isinstance(chars, str) or not chars or len(chars) > vocab_size:
            raise UserError(
                f"{bad} (its characters are missing or more than the model's vocabulary)"
            )
        tok: Tokenizer = CharTokenizer(chars)
    else:
        proto = entry.get("model")
        if (
            not isinstance(proto, torch.Tensor)
            or proto.dtype != torch.uint8
            or proto.dim() != 1
            or not 0 < proto.numel() <= MAX_TOKENIZER_BYTES
        ):
            raise UserError(f"{bad} (the sentencepiece model is not a byte string)")
        try:
            tok = BPETokenizer(proto.cpu().numpy().tobytes())
        except Exception as exc:  # sentencepiece's parse errors have no common type
            raise UserError(f"{bad} (sentencepiece cannot read it)") from exc
    if not 0 < tok.vocab_size <= vocab_size:
        raise UserError(
            f"{bad} ({tok.vocab_size} tokens for a model of {vocab_size}: they do not belong together)"
        )
    return tok


def hf_tokenizer_of(entry: dict, bad: str) -> HFTokenizer:
    """A pretrained model's tokenizer from its checkpoint entry: its ``tokenizer.json`` bytes."""
    spec, special = entry.get("json"), entry.get("special", {})
    if (
        not isinstance(spec, torch.Tensor)
        or spec.dtype != torch.uint8
        or spec.dim() != 1
        or not 0 < spec.numel() <= MAX_TOKENIZER_BYTES
        or not isinstance(special, dict)
        or not all(isinstance(k, str) and isinstance(v, str) for k, v in special.items())
    ):
        raise UserError(f"{bad} (its tokenizer.json is not a byte string)")
    try:
        text = spec.cpu().numpy().tobytes().decode()
    except UnicodeDecodeError as exc:
        raise UserError(f"{bad} (its tokenizer.json is not UTF-8)") from exc
    try:
        return HFTokenizer(text, special)
    except UserError:
        raise
    except Exception as exc:  # the tokenizers library's parse errors are plain Exceptions
        raise UserError(f"{bad} (the tokenizers library cannot read it)") from exc


WEIGHTS = ("fp32", "bf16", "int8")


def load_model(
    path, device, weights: str = "fp32", merge: bool = True
) -> tuple[GPT, Tokenizer, dict]:
    """A trained model and its tokenizer (both live in the checkpoint), checked first; its
    weights as trained (fp32), cast to bf16, or int8 (see :func:`with_weights`). A LoRA run's
    checkpoint holds adapters: its base is loaded from the source it names and the adapters
    merged into it (``merge=False``: kept apart, for ``export --format peft``)."""
    state = load_checkpoint(path, project=PROJECT, required=CHECKPOINT_KEYS, map_location="cpu")
    if lora_run(state):  # a base read a tensor at a time: its blocks go back to the OS when freed
        large_allocations_from_os()
    with refuse_if_damaged(path):
        cfg = checked_config(state, path)
        tok = checked_tokenizer(state, path, cfg.vocab_size)
        if lora_run(state):
            dtype = torch.bfloat16 if weights == "bf16" else torch.float32
            model = adapted_model(state, cfg, path, merge, dtype)
        else:
            model = model_from_checkpoint(lambda: GPT(cfg), state["model"], path)
    return with_weights(model.to(device).eval(), weights), tok, state


def lora_run(state: dict) -> bool:
    config = state.get("config")
    return isinstance(config, dict) and bool(config.get("lora_rank"))


def pretrained_model(
    source: str, block_size: int | None, quiet: bool, dtype: torch.dtype | None = torch.float32
):
    """(model, tokenizer) of an ``--init-from`` source: a transformers folder, a Hub name or an
    austen-net checkpoint; its weights in ``dtype`` (None: as stored)."""
    if Path(source).is_file():
        model, tok, _ = load_model(Path(source), "cpu")
        return (model if dtype is None else model.to(dtype)), tok
    model, tok, _ = load_pretrained(source, block_size=block_size, quiet=quiet, dtype=dtype)
    return model, tok


def base_weights(
    source: str, block_size: int, quiet: bool, dtype: torch.dtype | None = torch.float32
) -> dict:
    """A LoRA run's frozen weights, from its ``--init-from`` source, cut to its context."""
    model, _ = pretrained_model(source, block_size, quiet, dtype)
    weights = model.state_dict()
    if "pos_emb.weight" in weights:
        weights["pos_emb.weight"] = weights["pos_emb.weight"][:block_size]
    return weights


def adapted_model(
    state: dict, cfg: GPTConfig, path, merge: bool, dtype: torch.dtype = torch.float32
) -> GPT:
    """The base a LoRA checkpoint names (checked by its fingerprint) with the adapters loaded
    (merged: summed in fp32), the whole model in ``dtype``. The base is read as stored (a Llama's
    bf16 never passes through fp32 whole): what it holds at once is the stored base, then the
    model in ``dtype`` a tensor at a time, never both whole in fp32."""
    config, lora = state["config"], state.get("lora")
    if not isinstance(lora, dict) or not isinstance(config.get("init_from"), str):
        raise UserError(f"{path}: a LoRA checkpoint without the base model it adapts")
    start = base_weights(config["init_from"], cfg.block_size, quiet=True, dtype=None)
    if fingerprint(start) != lora.get("base_fingerprint"):
        raise UserError(
            f"{path}: its adapters were trained on another version of {config['init_from']} "
            "(the base weights' fingerprint differs)"
        )
    model = model_from_checkpoint(lambda: GPT(cfg), start, path, assign=True)
    del start  # the model holds the base now: each merged layer's stored copy is freed as it goes
    try:
        apply_lora(model, settings_from(config))
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"{path}: its LoRA settings are damaged ({exc})") from None
    freeze_into_buffers(model)
    check_weights_fit(model.state_dict(), state["model"], path)
    model.load_state_dict(state["model"])
    if merge:
        merge_lora(model, dtype)
        thaw(model)
    return model.to(dtype)


def with_weights(model: GPT, weights: str, int8_kernel: str | None = None) -> GPT:
    """``bf16``: every weight cast to bfloat16 (half the bytes a cached token reads). ``int8``:
    every Linear layer (attention, MLP, the head) with int8 weights, one scale per output
    channel, a quarter of the matrices' bytes, CPU only; the kernel (weight-only, compiled with
    the decode step, on CPUs with AVX-512; else fbgemm's dynamic int8, eager) is the machine's
    unless ``int8_kernel`` names one (:mod:`austen_net.int8`)."""
    if weights == "bf16":
        return model.to(torch.bfloat16)
    if weights == "int8":
        if model.tok_emb.weight.device.type != "cpu":
            raise UserError(
                "--weights int8 runs on the CPU (PyTorch's int8 kernels): add --device cpu"
            )
        return int8.quantize(model, int8_kernel)
    if weights != "fp32":
        raise UserError(f"--weights {weights}: use one of {', '.join(WEIGHTS)}")
    return model


def weight_bytes(model: torch.nn.Module) -> int:
    """Bytes of the weights a cached token reads: every parameter but the embedding table(s), of
    which a token reads one row (a tied head is counted once, as the head), and the int8 layers'
    weights with their scales."""
    tied = isinstance(model.head, torch.nn.Linear) and model.head.weight is model.tok_emb.weight
    skip = set() if tied else {id(model.tok_emb.weight)}
    if model.pos_emb is not None:
        skip.add(id(model.pos_emb.weight))
    total = sum(p.numel() * p.element_size() for p in model.parameters() if id(p) not in skip)
    return total + int8.int8_bytes(model)


def bpc_of_texts(
    model: GPT, tok: Tokenizer, texts: list[str], batch: int, device, precision: str
) -> dict:
    """Bits per character (and loss per token) of ``texts`` under ``model``."""
    encoded = [(t, torch.from_numpy(tok.encode_array(t)).to(device)) for t in texts]
    encoded = [(t, s) for t, s in encoded if len(s) > 1]
    if not encoded:
        raise UserError("nothing to evaluate: the text is empty")
    streams = [s for _, s in encoded]
    chars = predicted_chars(tok, [t for t, _ in encoded], streams)
    with torch.no_grad(), autocast(device, resolve_precision(precision, device)):
        nll, count = total_nll(model, streams, model.cfg.block_size, batch)
    return {
        "bpc": round(bits_per_char(nll, chars), 4),
        "loss_per_token": round(nll / count, 4),
        "tokens": count,
        "chars": chars,
    }
