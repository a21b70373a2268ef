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
}

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
}
