"""``austen-net import``: a model in transformers' layout (a folder or a Hub name) as a checkpoint,
or a folder of peft adapters (``adapter_config.json``) as a LoRA checkpoint on the base it names."""

from __future__ import annotations

import json
from pathlib import Path

from austen_net.config import ImportConfig
from austen_net.lora import import_adapter
from austen_net.pretrained import import_checkpoint
from shared.errors import UserError


def import_command(cfg: ImportConfig) -> int:
    """One JSON line saying what was imported."""
    folder = Path(cfg.source)
    if (folder / "adapter_config.json").is_file() and not (folder / "config.json").exists():
        out = Path(cfg.out)
        if out.exists() or out.is_symlink():
            raise UserError(f"--out {out} exists: give a new file name")
        result = import_adapter(folder, cfg.base, out, cfg.block_size, cfg.quiet)
    elif cfg.base:
        raise UserError("--base applies to a folder of peft adapters (adapter_config.json)")
    else:
        result = import_checkpoint(cfg.source, cfg.out, cfg.block_size, cfg.quiet)
    print(json.dumps(result))
    return 0
