"""``austen-net train``: corpus -> tokenizer -> on-device token stream -> GPT, through shared's loop."""

from __future__ import annotations

import dataclasses
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
from austen_net.lora import (
    BASE_DTYPES,
    apply_lora,
    fingerprint,
    freeze_into_buffers,
    settings_from,
)
from austen_net.model import GPT, GPTConfig
from austen_net.presets import FINETUNE_CONTEXT, PRESETS
from austen_net.tokenizer import Tokenizer, build_tokenizer
from austen_net.windows import (
    RandomWindows,
    bits_per_char,
    encode_stream,
    lm_loss,
    predicted_chars,
    total_nll,
)
from shared.checkpoint import model_from_checkpoint, run_data_settings
from shared.device import large_allocations_from_os
from shared.distributed import shard_fsdp, world_size
from shared.errors import UserError
from shared.lifecycle import Outcome, Plan, TrainingTask, run_training
from shared.optim import warmup_cosine
from shared.paths import cache_root
from shared.plots import LivePlot
from shared.progress import info
from shared.runs import Run
from shared.training import Cadence, Trainer

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


def model_config(cfg: TrainConfig, vocab_size: int) -> GPTConfig:
    """The GPT's shape: the preset's, with the flags given (``TrainConfig`` has filled them)."""
    shape = {k: getattr(cfg, k) for k in ("n_layer", "n_head", "n_embd", "block_size", "dropout")}
    gpt = GPTConfig(vocab_size=vocab_size, pos=cfg.pos, norm=cfg.norm, mlp=cfg.mlp, **shape)
    if gpt.n_embd % gpt.n_head or (gpt.n_embd // gpt.n_head) % 2:
        raise UserError(f"--n-embd {gpt.n_embd} must split into {gpt.n_head} heads of even width")
    return gpt


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


@dataclasses.dataclass
class TextAndModel:
    """What the run trains on and with: the works' split, its tokenizer, the token streams on the
    device and the GPT (with its LoRA record). ``plan`` builds it; ``summary`` reads it."""

    split: Split
    source: str | None  # the user's own text, described; None for the Austen corpus
    tok: Tokenizer
    gpt_cfg: GPTConfig
    model: GPT
    lora: dict | None
    train_stream: torch.Tensor
    val_streams: list[torch.Tensor]
    val_chars: int  # characters the validation streams predict


def load_text_and_model(cfg: TrainConfig, device, resumed, resume_path) -> TextAndModel:
    """The works and their split, the tokenizer (the resumed run's, a pretrained model's or a new
    one), the token streams on the device, and the GPT (sharded under ``--fsdp``)."""
    if device.type == "cpu":  # less resident memory, no slower (NOTES.md, "LoRA")
        large_allocations_from_os()
    works = training_works(
        cfg.text, cfg.corpus_dir, cfg.data_dir, quiet=cfg.quiet, download=cfg.download
    )
    split = split_corpus(works, cfg.val_fraction, tuple(cfg.holdout_works))
    start = None
    if resumed is not None:
        gpt_cfg = checked_config(resumed, resume_path)
        tok = checked_tokenizer(resumed, resume_path, gpt_cfg.vocab_size)
        if cfg.lora_rank:  # the checkpoint holds the adapters: the base comes from its source
            start = base_weights(cfg.init_from, gpt_cfg.block_size, cfg.quiet, base_dtype(cfg))
    elif cfg.init_from:
        gpt_cfg, tok, start = initial_weights(cfg)
    else:
        cache = cache_root(PROJECT) / "tokenizers"
        tok = build_tokenizer(split.train, cfg.tokenizer, cfg.vocab_size, cache, cfg.quiet)
        gpt_cfg = model_config(cfg, tok.vocab_size)
    train_stream, val_streams, val_chars = token_streams(cfg, tok, split, device)
    if start is None:
        model = GPT(gpt_cfg)
    else:  # the model takes the loaded tensors: a bf16 LoRA base never exists in fp32
        model = model_from_checkpoint(lambda: GPT(gpt_cfg), start, cfg.init_from, assign=True)
    model.grad_checkpoint = cfg.grad_checkpoint
    lora = with_adapters(model, cfg, start, resumed, resume_path) if cfg.lora_rank else None
    if cfg.fsdp:  # before the optimizer: its parameters become this rank's shards
        shard_fsdp(model.to(device), list(model.blocks), device)
    info(
        f"model: {model.num_params() / 1e6:.2f}M parameters, {gpt_cfg.n_layer} layers, "
        f"{gpt_cfg.n_embd} wide, context {gpt_cfg.block_size}",
        cfg.quiet,
    )
    source = describe_text(cfg.text, works) if cfg.text else None
    return TextAndModel(
        split, source, tok, gpt_cfg, model, lora, train_stream, val_streams, val_chars
    )


def token_streams(cfg: TrainConfig, tok: Tokenizer, split: Split, device):
    """The training stream, the validation streams (on the device) and the characters the
    validation streams predict."""
    train_stream = encode_stream(tok, split.train, device)
    scored = [(t, encode_stream(tok, [t], device)) for t in split.val]
    scored = [(t, s) for t, s in scored if len(s) > 1]  # a stream needs 2 tokens to predict one
    if not scored:
        raise UserError(
            "the validation split holds no text to score (a work too short for --val-fraction "
            f"{cfg.val_fraction}?): raise --val-fraction or add works"
        )
    val_streams = [s for _, s in scored]
    info(
        f"tokens: {len(train_stream):,} train, {sum(map(len, val_streams)):,} validation "
        f"({split.train_chars / max(len(train_stream), 1):.2f} chars/token, "
        f"vocab {tok.vocab_size})",
        cfg.quiet,
    )
    return train_stream, val_streams, predicted_chars(tok, [t for t, _ in scored], val_streams)


def validation(cfg: TrainConfig, got: TextAndModel):
    """The evaluation ``fit`` runs: validation loss, bits per character, and how many tokens it
    scored (``--eval-tokens`` of them, spread evenly, or all)."""
    val_tokens = sum(len(s) - 1 for s in got.val_streams)
    if cfg.eval_tokens and val_tokens > cfg.eval_tokens:
        info(
            f"validation: each evaluation scores {cfg.eval_tokens:,} of its {val_tokens:,} "
            "tokens, spread evenly (--eval-tokens; 'austen-net evaluate' scores them all)",
            cfg.quiet,
        )

    def evaluate(tr: Trainer) -> dict[str, float]:
        nll, count = total_nll(
            tr.eval_model,
            got.val_streams,
            got.gpt_cfg.block_size,
            cfg.batch_size,
            tr.autocast,
            cfg.eval_tokens,
        )
        per_token = nll / max(count, 1)  # a sample's bits per char: its loss at the split's
        return {  # characters per token (exact when the whole split is scored)
            "val_loss": per_token,
            "val_bpc": bits_per_char(per_token * val_tokens, got.val_chars),
            "val_tokens": count,
        }

    return evaluate


class AustenTask(TrainingTask):
    """The corpus, its tokenizer (a resumed run's own, never a new one) and the GPT."""

    project = PROJECT
    checkpoint_keys = CHECKPOINT_KEYS
    settings_fixed_on_resume = MODEL_SETTINGS

    def compile_pays_off(self, cfg: TrainConfig, device) -> bool:
        return cfg.max_steps >= CPU_COMPILE_MIN_STEPS

    def resumed_config(self, cfg: TrainConfig, state: dict) -> TrainConfig:
        # a resumed run reads the text it started on unless told otherwise
        return run_data_settings(
            cfg, state["config"], ("text", "corpus_dir", "data_dir"), quiet=cfg.quiet
        )

    def plan(self, cfg: TrainConfig, device, resumed, resume_path) -> Plan:
        got = load_text_and_model(cfg, device, resumed, resume_path)
        optimizer = got.model.configure_optimizers(
            cfg.lr, cfg.weight_decay, betas=(cfg.beta1, cfg.beta2), device=device
        )
        return Plan(
            model=got.model,
            optimizer=optimizer,
            scheduler=warmup_cosine(optimizer, cfg.warmup_steps, cfg.max_steps, cfg.min_lr_ratio),
            batch_for_step=RandomWindows(
                got.train_stream, got.gpt_cfg.block_size, cfg.batch_size, cfg.grad_accum, cfg.seed
            ),
            loss_fn=lm_loss,
            cadence=Cadence(
                cfg.max_steps,
                eval_every=cfg.eval_every,
                log_every=cfg.log_every,
                max_minutes=cfg.max_minutes,
            ),
            evaluate=validation(cfg, got),
            extra_state={
                "model_config": dataclasses.asdict(got.gpt_cfg),
                "tokenizer": got.tok.state(),
                "text": got.source,
                "prompt": opening(got.split.val[0]),  # the demo's default prompt
                **({"lora": got.lora} if got.lora else {}),
            },
            plot=LivePlot(
                "loss.png",
                redraw_every=5,
                title=f"austen-net {cfg.preset} ({got.tok.kind})",
                metrics=("loss", "bpc"),
            ),
            clip_grad=cfg.clip_grad or None,
            prepared=got,
        )

    def summary(self, cfg: TrainConfig, outcome: Outcome, got: TextAndModel) -> dict:
        result, trainer, ckpt, model = (
            outcome.result,
            outcome.trainer,
            outcome.checkpoints,
            got.model,
        )
        return {
            "preset": preset_name(cfg),
            "text": got.source or "the Austen corpus",
            "init_from": cfg.init_from,
            "tokenizer": got.tok.kind,
            "vocab_size": got.tok.vocab_size,
            "params_m": round(model.num_params() / 1e6, 2),
            "trainable_params_m": round(
                sum(p.numel() for p in model.parameters() if p.requires_grad) / 1e6, 4
            ),
            "device": str(outcome.device),
            "world_size": world_size(),
            "steps": trainer.step,
            "tokens_seen": trainer.step * cfg.batch_size * cfg.grad_accum * got.gpt_cfg.block_size,
            "train_seconds": result["train_seconds"],
            "val_loss": round(result["val_loss"], 4),
            "val_bpc": round(result["val_bpc"], 4),
            "best_val_loss": round(ckpt.best, 4) if ckpt.best is not None else None,
            "best_step": outcome.chosen_step if ckpt.best_path.is_file() else None,
            "val_chars": got.val_chars,
            "val_tokens_scored": int(result["val_tokens"]),
            "train_chars": got.split.train_chars,
            "stopped_by_time_budget": result["stopped_by_time_budget"],
            "compiled": trainer.compile,
            "compile_seconds": result["compile_seconds"],
            "checkpoint": str(ckpt.best_path),
        }


def with_adapters(model: GPT, cfg: TrainConfig, start: dict, resumed, resume_path) -> dict:
    """LoRA on ``model`` (its weights frozen in ``--lora-base``'s dtype, fp32 adapters); the
    checkpoint's record of it: the settings and the base's fingerprint, checked on resume."""
    print_ = fingerprint(start)
    if resumed is not None and resumed.get("lora", {}).get("base_fingerprint") != print_:
        raise UserError(
            f"{resume_path}: its adapters were trained on another version of {cfg.init_from} "
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


def train_austen(cfg: TrainConfig) -> tuple[Run, dict]:
    """``austen-net train``."""
    return run_training(AustenTask(), cfg)
