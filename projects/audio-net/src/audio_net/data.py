"""The data a command reads: the clips found (GTZAN or your label folders) and their log-mel
windows, decoded once and cached (the cache folder and the feature settings come from the flags);
and ``audio-net data download|check``."""

from __future__ import annotations

import logging

from audio_net.ast_backbone import source_features as ast_features
from audio_net.ast_backbone import source_folder
from audio_net.config import DataOptions
from audio_net.dataset import find_gtzan
from audio_net.features import FeatureParams
from audio_net.inference import PROJECT
from audio_net.sample import write_sample
from shared.cli import DataCommandConfig
from shared.files import cache_root

log = logging.getLogger(__name__)

WINDOW_SECONDS, HOP_SECONDS = 3.0, 1.5  # the defaults of --window-seconds and --hop-seconds


def feature_params(opts: DataOptions) -> FeatureParams:
    """The features the flags ask for: our log-mel windows, or, for ``--model ast``, the Kaldi
    filter bank the AST source was trained on (its rate, mel bins and input length)."""
    if getattr(opts, "model", None) == "ast":
        folder = source_folder(opts.model_source, getattr(opts, "quiet", False))
        return ast_features(folder, opts.hop_seconds)
    window = opts.window_seconds or WINDOW_SECONDS
    # a clip must fill a third of a window (1 s for music's 3 s windows, 1/3 s for 1 s words);
    # a shorter one is padded with silence
    return FeatureParams(
        window_seconds=window,
        hop_seconds=opts.hop_seconds or HOP_SECONDS,
        n_mels=opts.n_mels,
        min_seconds=min(1.0, window / 3),
    )


def cache_dir(opts: DataOptions):
    """``--cache-dir``, else ``<data root>/cache/audio-net`` of the default data root: never
    inside the folder ``--data-dir`` names (your label folders, or a read-only GTZAN copy)."""
    return cache_root(PROJECT, opts.cache_dir)


def data(cfg: DataCommandConfig) -> int:
    """``audio-net data``: download GTZAN, check that it is there, or make the sample set."""
    if cfg.action == "sample":
        write_sample(cfg.data_dir, cfg.quiet)
        return 0
    clips = find_gtzan(cfg.data_dir, download=cfg.action == "download", quiet=cfg.quiet)
    log.info(f"GTZAN: {len(clips)} clips in {clips[0].path.parent.parent}")
    return 0
