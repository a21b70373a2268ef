"""``multi-net data download|check|synth``: MSR-VTT fetched or found, or the synthetic
audio-visual benchmark written."""

from __future__ import annotations

import dataclasses
import json
import logging

from multi_net.config import DataConfig
from multi_net.dataset import download_msrvtt, find_videos_dir, msrvtt_root
from multi_net.synth import DEFAULT_SMALL_VIDEOS, DEFAULT_VIDEOS, generate
from shared.files import data_root
from shared.runs import check_writable_dir

log = logging.getLogger(__name__)

SAMPLE_FOLDER = "synth-sample"  # `data sample`: the small benchmark, under the data root


def data(cfg: DataConfig) -> int:
    if cfg.action == "sample":  # generated: no download, the same on every machine
        check_writable_dir(data_root(cfg.data_dir), "--data-dir")
        out = cfg.out or data_root(cfg.data_dir) / SAMPLE_FOLDER
        return synth(dataclasses.replace(cfg, out=out, small=True))
    if cfg.action == "synth":
        return synth(cfg)
    if cfg.action == "download":
        root = download_msrvtt(cfg.data_dir, cfg.quiet)
    else:
        root = msrvtt_root(cfg.data_dir)
    videos = find_videos_dir(root) or find_videos_dir(root / "MSRVTT")
    log.info(f"MSR-VTT under {root}: videos in {videos}")
    return 0 if videos else 2


def synth(cfg: DataConfig) -> int:
    """The synthetic benchmark (clips whose sound and picture both carry the caption)."""
    out = cfg.out
    if out is None:  # under the data root, never in the current folder or the checkout
        out = data_root(cfg.data_dir) / "synth"
        log.info(f"writing the benchmark into {out} (--out DIR for another folder)")
    check_writable_dir(out, "--out")
    small = DEFAULT_SMALL_VIDEOS if cfg.small else DEFAULT_VIDEOS
    videos = cfg.videos if cfg.videos is not None else small
    print(json.dumps(generate(out, videos, cfg.seed, cfg.quiet, cfg.small, cfg.force)))
    return 0
