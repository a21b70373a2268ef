"""``austen-net train``, top to bottom as a run happens: the flags settled (the preset fills
what no flag gave); the device; the text (the Austen works or ``--text``) and its split; the
tokenizer and the token streams on the device; the GPT (new, imported with ``--init-from``, or
with LoRA adapters) and AdamW; the run folder; shared's loop (``fit``); the summary. Everything
that can refuse the command happens before the run folder exists, so a refusal leaves nothing
behind."""

from __future__ import annotations

import dataclasses
import logging
import re

import torch

from austen_net.config import CPU_COMPILE_MIN_STEPS, TrainConfig
from austen_net.corpus import Split, describe_text, split_corpus, training_works
from austen_net.inference import (
    CHECKPOINT_KEYS,
    PROJECT,
    base_weights,
    checked_config,
    checked_tokenizer,
    pretrained_model,
)
from austen_net.lora import BASE_DTYPES, apply_lora, fingerprint, freeze_into_buffers, settings_from
from austen_net.model import GPT, GPTConfig
from austen_net.presets import FINETUNE_CONTEXT, PRESETS
from austen_net.tokenizer import Tokenizer, build_tokenizer
from austen_net.windows import (
    RandomWindows,
    bits_per_char,
    chunked_lm_loss,
    encode_stream,
    lm_loss,
    predicted_chars,
    total_nll,
)
from shared.checkpoint import Resumed, model_from_checkpoint, read_resume, run_data_settings
from shared.device import is_main, large_allocations_from_os, seeded_device, shard_fsdp, world_size
from shared.errors import UserError
from shared.runs import Run
from shared.training import Cadence, Fitted, Plot, WarmupCosine, fit

log = logging.getLogger(__name__)

# what makes the model and its tokenizer: a resume must keep them (the run records what ran)
MODEL_SETTINGS = (
    "preset",
    "tokenizer",
    "vocab_size",
    "n_layer",
    "n_head",
    "n_embd",
    "block_size",
    "dropout",
    "pos",
    "norm",
    "mlp",
    "init_from",
    "lora_rank",
    "lora_alpha",
    "lora_dropout",
    "lora_targets",
    "lora_base",
)
LARGE_LOGITS = 256 << 20  # bytes of fp32 logits per micro-batch beyond which the loss is chunked


def train(cfg: TrainConfig) -> dict:
    """``austen-net train``: returns the run's summary (printed last, and in ``summary.json``)."""
    cfg.settle()  # the preset fills what no flag gave; the rules across flags
    device = seeded_device(cfg.device, cfg.seed)
    resumed = read_resume(cfg, PROJECT, CHECKPOINT_KEYS, MODEL_SETTINGS) if cfg.resume else None
    if resumed is not None:  # the text it started on unless told otherwise (the rules again)
        text_flags = ("text", "corpus_dir", "data_dir")
        cfg = run_data_settings(cfg, resumed.config, text_flags, quiet=cfg.quiet).settle()
    if device.type == "cpu" and cfg.init_from:  # a large model's memory: NOTES.md, "LoRA"
        large_allocations_from_os()

    # the text, its tokenizer and its token streams
    works = training_works(
        cfg.text, cfg.corpus_dir, cfg.data_dir, quiet=cfg.quiet, download=cfg.download
    )
    split = split_corpus(works, cfg.val_fraction, tuple(cfg.holdout_works))
    gpt_cfg, tok, start = model_source(cfg, split, resumed)
    train_stream = encode_stream(tok, split.train, device)
    val_texts, val_streams = validation_streams(cfg, tok, split, device)
    val_chars = predicted_chars(tok, val_texts, val_streams)
    say_tokens(cfg, tok, split, train_stream, val_streams)

    # the model and its optimizer
    model = GPT(gpt_cfg) if start is None else imported(gpt_cfg, start, cfg.init_from)
    model.grad_checkpoint = cfg.grad_checkpoint
    lora = with_adapters(model, cfg, start, resumed) if cfg.lora_rank else None
    if cfg.fsdp:  # before the optimizer: its parameters become this rank's shards
        shard_fsdp(model.to(device), list(model.blocks), device)
    log.info(
        f"model: {model.num_params() / 1e6:.2f}M parameters, {gpt_cfg.n_layer} layers, "
        f"{gpt_cfg.n_embd} wide, context {gpt_cfg.block_size}"
    )
    optimizer = model.configure_optimizers(cfg.lr, cfg.weight_decay, (cfg.beta1, cfg.beta2), device)

    # the run folder, and shared's loop
    run = Run(PROJECT, cfg.out, cfg, resume_from=resumed.path if resumed else None)
    fitted = fit(
        model,
        optimizer,
        RandomWindows(train_stream, gpt_cfg.block_size, cfg.batch_size, cfg.grad_accum, cfg.seed),
        training_loss(cfg, model),
        Cadence(
            cfg.max_steps,
            eval_every=cfg.eval_every,
            log_every=cfg.log_every,
            max_minutes=cfg.max_minutes,
        ),
        run=run,
        device=device,
        schedule=WarmupCosine(cfg.warmup_steps, cfg.max_steps, cfg.min_lr_ratio),
        evaluate=validation(cfg, gpt_cfg, val_streams, val_chars),
        precision=cfg.precision,
        compile=cfg.compile,
        compile_pays_off=cfg.max_steps >= CPU_COMPILE_MIN_STEPS,
        clip_grad=cfg.clip_grad or None,
        resumed=resumed,
        extra_state={
            "model_config": gpt_cfg.as_dict(),
            "tokenizer": tok.state(),
            "text": describe_text(cfg.text, works) if cfg.text else None,
            "prompt": opening(split.val[0]),  # the demo's default prompt
            **({"lora": lora} if lora else {}),
        },
        plot=Plot("loss.png", f"austen-net {cfg.preset} ({tok.kind})", ("loss", "bpc")),
        quiet=cfg.quiet,
    )
    if not is_main():
        return {}
    return run.finish(summary(cfg, fitted, tok, split, works, val_chars))


def model_source(cfg: TrainConfig, split: Split, resumed: Resumed | None):
    """(the GPT's shape, its tokenizer, the weights it starts from or None): a resumed run's own
    (a LoRA run's base comes from its source again), a pretrained model's (``--init-from``), or
    a new tokenizer trained on the split's training text and the preset's shape."""
    if resumed is not None:
        gpt_cfg = checked_config(resumed.state, resumed.path)
        tok = checked_tokenizer(resumed.state, resumed.path, gpt_cfg.vocab_size)
        block, dtype = gpt_cfg.block_size, base_dtype(cfg)
        start = base_weights(cfg.init_from, block, cfg.quiet, dtype) if cfg.lora_rank else None
        return gpt_cfg, tok, start
    if cfg.init_from:
        return initial_weights(cfg)
    tok = build_tokenizer(split.train, cfg.tokenizer, cfg.vocab_size, cfg.quiet)
    shape = {k: getattr(cfg, k) for k in ("n_layer", "n_head", "n_embd", "block_size", "dropout")}
    gpt_cfg = GPTConfig(vocab_size=tok.vocab_size, pos=cfg.pos, norm=cfg.norm, mlp=cfg.mlp, **shape)
    if gpt_cfg.n_embd % gpt_cfg.n_head or gpt_cfg.head_dim % 2:
        heads = gpt_cfg.n_head
        raise UserError(f"--n-embd {gpt_cfg.n_embd} must split into {heads} heads of even width")
    return gpt_cfg, tok, None


def initial_weights(cfg: TrainConfig):
    """``--init-from``: (the model's config, its tokenizer, its weights) from a transformers folder,
    a Hub name or an austen-net checkpoint. The shape and tokenizer are the source's: a shape flag
    that says otherwise is refused. The context is ``--block-size`` (at most the source's) or
    ``FINETUNE_CONTEXT``: a learned position table keeps its first rows, RoPE needs nothing."""
    source = cfg.init_from
    model, tok = pretrained_model(source, cfg.block_size, cfg.quiet, base_dtype(cfg))
    for name in ("n_layer", "n_head", "n_embd"):
        given = getattr(cfg, name)
        if given is not None and given != getattr(model.cfg, name):
            raise UserError(
                f"--{name.replace('_', '-')} {given}: the model comes from {source}, which has "
                f"{name} {getattr(model.cfg, name)} (drop the shape flags and --preset)"
            )
    longest = model.cfg.block_size
    if cfg.block_size is not None and cfg.block_size > longest:
        raise UserError(f"--block-size {cfg.block_size}: {source} has a context of {longest}")
    context = cfg.block_size or min(longest, FINETUNE_CONTEXT)
    gpt_cfg = dataclasses.replace(model.cfg, block_size=context, dropout=cfg.dropout or 0.0)
    weights = model.state_dict()
    if "pos_emb.weight" in weights:
        weights["pos_emb.weight"] = weights["pos_emb.weight"][:context]
    return gpt_cfg, tok, weights


def imported(gpt_cfg: GPTConfig, weights: dict, source: str) -> GPT:
    """The GPT holding a pretrained model's tensors themselves (a bf16 LoRA base never exists in
    fp32), checked against the shapes ``gpt_cfg`` describes first."""
    return model_from_checkpoint(lambda: GPT(gpt_cfg), weights, source, assign=True)


def validation_streams(cfg: TrainConfig, tok: Tokenizer, split: Split, device):
    """The validation texts that hold something to predict (two tokens at least), and their token
    streams on the device."""
    scored = [(t, encode_stream(tok, [t], device)) for t in split.val]
    scored = [(t, s) for t, s in scored if len(s) > 1]
    if not scored:
        raise UserError(
            "the validation split holds no text to score (a work too short for --val-fraction "
            f"{cfg.val_fraction}?): raise --val-fraction or add works"
        )
    return [t for t, _ in scored], [s for _, s in scored]


def say_tokens(cfg: TrainConfig, tok: Tokenizer, split: Split, train_stream, val_streams) -> None:
    per_token = split.train_chars / max(len(train_stream), 1)
    log.info(
        f"tokens: {len(train_stream):,} train, {sum(map(len, val_streams)):,} validation "
        f"({per_token:.2f} chars/token, vocab {tok.vocab_size})"
    )


def training_loss(cfg: TrainConfig, model: GPT):
    """The model's own cross-entropy; from the hidden states a chunk at a time where a
    micro-batch's logits would be large (an imported model's vocabulary, LoRA's memory bound)."""
    logits_bytes = cfg.batch_size * model.cfg.block_size * model.cfg.vocab_size * 4
    if cfg.lora_rank or logits_bytes > LARGE_LOGITS:
        return chunked_lm_loss(model.head.weight)
    return lm_loss


def validation(cfg: TrainConfig, gpt_cfg: GPTConfig, streams: list[torch.Tensor], chars: int):
    """The evaluation ``fit`` runs: validation loss, bits per character, and how many tokens it
    scored (``--eval-tokens`` of them, spread evenly, or all)."""
    tokens = sum(len(s) - 1 for s in streams)
    if cfg.eval_tokens and tokens > cfg.eval_tokens:
        log.info(
            f"validation: each evaluation scores {cfg.eval_tokens:,} of its {tokens:,} tokens, "
            "spread evenly (--eval-tokens; 'austen-net evaluate' scores them all)"
        )

    def evaluate(model) -> dict[str, float]:
        nll, count = total_nll(model, streams, gpt_cfg.block_size, cfg.batch_size, cfg.eval_tokens)
        per_token = nll / max(count, 1)  # a sample's bits per char: its loss at the split's
        return {  # characters per token (exact when the whole split is scored)
            "val_loss": per_token,
            "val_bpc": bits_per_char(per_token * tokens, chars),
            "val_tokens": count,
        }

    return evaluate


def with_adapters(model: GPT, cfg: TrainConfig, start: dict, resumed: Resumed | None) -> dict:
    """LoRA on ``model`` (its weights frozen in ``--lora-base``'s dtype, fp32 adapters); the
    checkpoint's record of it: the settings and the base's fingerprint, checked on resume."""
    print_ = fingerprint(start)
    if resumed is not None and resumed.state.get("lora", {}).get("base_fingerprint") != print_:
        raise UserError(
            f"{resumed.path}: its adapters were trained on another version of {cfg.init_from} "
            "(the base weights' fingerprint differs)"
        )
    try:
        apply_lora(model, settings_from(dataclasses.asdict(cfg)), BASE_DTYPES[cfg.lora_base])
    except ValueError as exc:
        raise UserError(f"--lora-rank: {exc}") from None
    freeze_into_buffers(model)
    return {"base": cfg.init_from, "base_fingerprint": print_, "base_dtype": cfg.lora_base}


def base_dtype(cfg: TrainConfig) -> torch.dtype:
    """The dtype the --init-from weights are loaded in: LoRA's --lora-base, else fp32."""
    return BASE_DTYPES[cfg.lora_base] if cfg.lora_rank else torch.float32


def summary(cfg: TrainConfig, fitted: Fitted, tok: Tokenizer, split: Split, works, val_chars: int):
    """What the run reports (with the chosen weights loaded)."""
    result, trainer, model = fitted.result, fitted.trainer, fitted.model
    source = describe_text(cfg.text, works) if cfg.text else None
    return {
        "preset": preset_name(cfg),
        "text": source or "the Austen corpus",
        "init_from": cfg.init_from,
        "tokenizer": tok.kind,
        "vocab_size": tok.vocab_size,
        "params_m": round(model.num_params() / 1e6, 2),
        "trainable_params_m": round(
            sum(p.numel() for p in model.parameters() if p.requires_grad) / 1e6, 4
        ),
        "device": str(trainer.device),
        "world_size": world_size(),
        "steps": trainer.step,
        "tokens_seen": trainer.step * cfg.batch_size * cfg.grad_accum * model.cfg.block_size,
        "train_seconds": result["train_seconds"],
        "val_loss": round(result["val_loss"], 4),
        "val_bpc": round(result["val_bpc"], 4),
        "best_val_loss": round(fitted.best, 4) if fitted.best is not None else None,
        "best_step": fitted.step if fitted.checkpoint.name == "best.pt" else None,
        "val_chars": val_chars,
        "val_tokens_scored": int(result["val_tokens"]),
        "train_chars": split.train_chars,
        "stopped_by_time_budget": result["stopped_by_time_budget"],
        "compiled": trainer.compile,
        "compile_seconds": result["compile_seconds"],
        "checkpoint": str(fitted.checkpoint.parent / "best.pt"),
    }


def preset_name(cfg: TrainConfig) -> str:
    """``--preset``'s name, or ``custom`` where a typed shape flag changed the preset's shape."""
    shape = PRESETS[cfg.preset]
    return cfg.preset if all(getattr(cfg, k) == v for k, v in shape.items()) else "custom"


def opening(text: str, limit: int = 60) -> str:
    """The first words of ``text`` as written (line breaks kept, at most ``limit`` characters,
    whole words): a prompt in the style of the run's own text."""
    text = text.lstrip()
    ends = [m.end() for m in re.finditer(r"\S+", text[: limit + 1]) if m.end() <= limit]
    return text[: ends[-1]] if ends else text[:limit]
