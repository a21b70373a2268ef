"""``austen-net train``: corpus -> tokenizer -> on-device token stream -> GPT, through shared's loop."""

from __future__ import annotations

import dataclasses

from austen_net.config import TrainConfig
from austen_net.corpus import describe_text, split_corpus, training_works
from austen_net.data import (
    RandomWindows,
    bits_per_char,
    encode_stream,
    lm_loss,
    predicted_chars,
    total_nll,
)
from austen_net.inference import (  # noqa: F401  (load_model, bpc_of_texts: older imports)
    CHECKPOINT_KEYS,
    PROJECT,
    bpc_of_texts,
    checked_config,
    checked_tokenizer,
    load_model,
)
from austen_net.model import GPT, PRESETS, GPTConfig
from austen_net.tokenizer import build_tokenizer
from shared.checkpoint import (
    CheckpointManager,
    check_resume_settings,
    load_checkpoint,
    resolve_resume,
    run_data_settings,
)
from shared.config import to_jsonable
from shared.device import seed_everything, select_device
from shared.distributed import is_main, world_size
from shared.errors import UserError
from shared.paths import cache_root, runs_root
from shared.plots import LivePlot
from shared.progress import info
from shared.runs import Run
from shared.schedules import warmup_cosine
from shared.training import Cadence, Trainer, fit, resume_run

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
)


def model_config(cfg: TrainConfig, vocab_size: int) -> GPTConfig:
    values = dict(PRESETS[cfg.preset])
    for key in ("n_layer", "n_head", "n_embd", "block_size", "dropout"):
        if getattr(cfg, key) is not None:
            values[key] = getattr(cfg, key)
    gpt = GPTConfig(vocab_size=vocab_size, pos=cfg.pos, norm=cfg.norm, mlp=cfg.mlp, **values)
    if gpt.n_embd % gpt.n_head or (gpt.n_embd // gpt.n_head) % 2:
        raise UserError(f"--n-embd {gpt.n_embd} must split into {gpt.n_head} heads of even width")
    return gpt


def train_austen(cfg: TrainConfig) -> tuple[Run, dict]:
    seed_everything(cfg.seed)
    device = select_device(cfg.device)
    resume_path = resolve_resume(cfg.resume, out=cfg.out, runs_root=runs_root(PROJECT))
    resumed = (
        load_checkpoint(resume_path, project=PROJECT, required=CHECKPOINT_KEYS, map_location=device)
        if resume_path
        else None
    )
    if resumed is not None:  # a resumed run reads the text it started on unless told otherwise
        data_flags = ("text", "corpus_dir", "data_dir")
        cfg = run_data_settings(cfg, resumed["config"], data_flags, quiet=cfg.quiet)
    works = training_works(
        cfg.text, cfg.corpus_dir, cfg.data_dir, quiet=cfg.quiet, download=cfg.download
    )
    split = split_corpus(works, cfg.val_fraction, tuple(cfg.holdout_works))
    if resumed is not None:
        check_resume_settings(resume_path, resumed["config"], cfg, MODEL_SETTINGS)
        gpt_cfg = checked_config(resumed, resume_path)
        # the run's own tokenizer, never a new one
        tok = checked_tokenizer(resumed, resume_path, gpt_cfg.vocab_size)
    else:
        cache = cache_root(PROJECT, None, cfg.data_dir) / "tokenizers"
        tok = build_tokenizer(split.train, cfg.tokenizer, cfg.vocab_size, cache, cfg.quiet)
    train_stream = encode_stream(tok, split.train, device)
    scored = [(t, encode_stream(tok, [t], device)) for t in split.val]
    scored = [(t, s) for t, s in scored if len(s) > 1]  # a stream needs 2 tokens to predict one
    if not scored:
        raise UserError(
            "the validation split holds no text to score (a work too short for --val-fraction "
            f"{cfg.val_fraction}?): raise --val-fraction or add works"
        )
    val_streams = [s for _, s in scored]
    val_chars = predicted_chars(tok, [t for t, _ in scored], val_streams)
    info(
        f"tokens: {len(train_stream):,} train, {sum(map(len, val_streams)):,} validation "
        f"({split.train_chars / max(len(train_stream), 1):.2f} chars/token, vocab {tok.vocab_size})",
        cfg.quiet,
    )

    if resumed is None:
        gpt_cfg = model_config(cfg, tok.vocab_size)
    model = GPT(gpt_cfg)
    info(
        f"model: {model.num_params() / 1e6:.2f}M parameters, {gpt_cfg.n_layer} layers, "
        f"{gpt_cfg.n_embd} wide, context {gpt_cfg.block_size}",
        cfg.quiet,
    )
    run = Run(PROJECT, cfg.out, cfg, resume_from=resume_path)
    optimizer = model.configure_optimizers(
        cfg.lr, cfg.weight_decay, betas=(cfg.beta1, cfg.beta2), device=device
    )
    trainer = Trainer(
        model,
        optimizer,
        warmup_cosine(optimizer, cfg.warmup_steps, cfg.max_steps, cfg.min_lr_ratio),
        device=device,
        precision=cfg.precision,
        clip_grad=cfg.clip_grad or None,
        compile=cfg.compile,
    )
    ckpt = CheckpointManager(run.checkpoints, project=PROJECT, monitor="val_loss", mode="min")
    if resumed is not None:
        resume_run(trainer, resumed, ckpt, run, resume_path, cfg.quiet)

    batches = RandomWindows(
        train_stream, gpt_cfg.block_size, cfg.batch_size, cfg.grad_accum, cfg.seed
    )

    def evaluate(tr: Trainer) -> dict[str, float]:
        nll, count = total_nll(
            tr.eval_model, val_streams, gpt_cfg.block_size, cfg.batch_size, tr.autocast
        )
        return {"val_loss": nll / max(count, 1), "val_bpc": bits_per_char(nll, val_chars)}

    source = describe_text(cfg.text, works) if cfg.text else None
    plot = LivePlot(run.figure("loss.png"), every=5, title=f"austen-net {cfg.preset} ({tok.kind})")
    extra = {
        "config": to_jsonable(cfg),
        "model_config": dataclasses.asdict(gpt_cfg),
        "tokenizer": tok.state(),
        "text": source,
    }
    result = fit(
        trainer,
        batches,
        lm_loss,
        Cadence(
            cfg.max_steps,
            eval_every=cfg.eval_every,
            log_every=cfg.log_every,
            max_minutes=cfg.max_minutes,
        ),
        evaluate=evaluate,
        run=run,
        checkpoints=ckpt,
        extra_state=extra,
        plot=plot,
        quiet=cfg.quiet,
    )
    if not is_main():
        return run, {}
    tokens_seen = trainer.step * cfg.batch_size * cfg.grad_accum * gpt_cfg.block_size
    best = (
        load_checkpoint(ckpt.best_path, project=PROJECT, required=CHECKPOINT_KEYS)
        if ckpt.best_path.is_file()
        else None
    )
    return run, {
        "preset": cfg.preset,
        "text": source or "the Austen corpus",
        "tokenizer": tok.kind,
        "vocab_size": tok.vocab_size,
        "params_m": round(model.num_params() / 1e6, 2),
        "device": str(device),
        "world_size": world_size(),
        "steps": trainer.step,
        "tokens_seen": tokens_seen,
        "train_seconds": result["train_seconds"],
        "val_loss": round(result["val_loss"], 4),
        "val_bpc": round(result["val_bpc"], 4),
        "best_val_loss": round(ckpt.best, 4) if ckpt.best is not None else None,
        "best_step": int(best["step"]) if best else None,
        "val_chars": val_chars,
        "train_chars": split.train_chars,
        "stopped_by_time_budget": result["stopped_by_time_budget"],
        "checkpoint": str(ckpt.best_path),
    }
