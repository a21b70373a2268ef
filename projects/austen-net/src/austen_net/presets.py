"""Model-size presets (``--preset``): the GPT's shape, and the training settings that come with
one. Plain data, so that ``config.py`` (and with it ``--help``) reads them without importing torch."""

from __future__ import annotations

PRESETS: dict[str, dict] = {
    # the original portfolio's size
    "seed": dict(n_layer=6, n_head=6, n_embd=384, block_size=256, dropout=0.2),
    # our choice for quality within a few minutes on one H100/H200 (see README)
    "default": dict(n_layer=8, n_head=8, n_embd=512, block_size=512, dropout=0.25),
    # readable text from a 2-core CPU in about 10 minutes (with train's cpu settings: BPE 4096,
    # batch 32, 600 steps)
    "cpu": dict(n_layer=4, n_head=4, n_embd=256, block_size=128, dropout=0.1),
    # tests and CPU smoke runs
    "tiny": dict(n_layer=2, n_head=2, n_embd=64, block_size=64, dropout=0.0),
    # fine-tuning a pretrained model (--init-from): its shape comes from the source, the context
    # trained on is --block-size or FINETUNE_CONTEXT (at most the source's)
    "finetune": dict(dropout=0.0),
}

FINETUNE_CONTEXT = 256

# training settings that come with a model preset
TRAIN_PRESETS: dict[str, dict] = {
    "cpu": dict(
        vocab_size=4096,
        batch_size=32,
        max_steps=600,
        max_minutes=10.0,
        warmup_steps=30,
        eval_every=100,
    ),
    # nanoGPT's finetune_shakespeare in spirit: a learning rate ~10x below pretraining's, a short
    # warmup, 32 sequences per optimizer step, the checkpoint chosen on validation loss
    "finetune": dict(
        lr=5e-5,
        min_lr_ratio=0.1,
        warmup_steps=20,
        batch_size=8,
        grad_accum=4,
        max_steps=300,
        eval_every=50,
    ),
}

# LoRA's learning rate where --lr is not typed (adapters are few and start at zero: they take a far
# larger step than full fine-tuning's 5e-5). Chosen by measurement on our own cpu-preset model, 256
# wide (NOTES.md, "LoRA's learning rate"); a model eight times wider wants less (--lr 2e-4).
LORA_LR = 5e-3
