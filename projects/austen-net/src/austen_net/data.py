"""``austen-net data``: the works downloaded or checked, or a sample of two."""

from __future__ import annotations

import logging

from austen_net.config import DataConfig
from austen_net.corpus import SAMPLE_WORKS, download_works, load_corpus
from shared.files import data_root
from shared.runs import check_writable_dir

log = logging.getLogger(__name__)


def data(cfg: DataConfig) -> int:
    """``austen-net data download|check|sample``: every work, or (sample) two of them, into
    ``<data root>/austen``; each checked against its pinned edition."""
    if cfg.action == "sample":
        root = data_root(cfg.data_dir)
        check_writable_dir(root, "--data-dir")
        paths = download_works(root, list(SAMPLE_WORKS), quiet=cfg.quiet)
        folder = root / "austen"
        log.info(f"sample: {len(paths)} works in {folder} (train --corpus-dir {folder})")
        return 0
    load_corpus(cfg.corpus_dir, cfg.data_dir, quiet=cfg.quiet, download=cfg.action == "download")
    return 0
