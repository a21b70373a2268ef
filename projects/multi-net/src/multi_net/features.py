"""Encoder features, computed once and cached: decoded clips -> CLIP frame features + the audio
input (log-mels for an audio encoder that trains, or CLAP's frozen audio embedding).

Training with ``--freeze-encoders`` never touches video again after the first pass: epochs read
(N, K, D) frame features and the audio inputs, (N, n_mels, T) log-mels or (N, D) CLAP
embeddings, from one cached file.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch
from torch import nn

from multi_net.encoders import LogMel, frame_features
from multi_net.video import DecodeCache, Decoded, DecodeError, DecodeParams, decode_many
from shared.errors import UserError
from shared.files import atomic_path
from shared.progress import progress, warn

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = {".mp4", ".avi", ".webm", ".mkv", ".mov"}


def video_files(folder: Path) -> dict[str, Path]:
    """Video id -> file for every video under ``folder`` (recursively, hidden folders skipped).
    The id is the file name without its extension; where two folders hold the same name, it is
    the path below ``folder`` (``cats/001``), so no video hides another."""
    if not folder.is_dir():
        raise UserError(f"video folder {folder} does not exist")
    found = sorted(
        p
        for p in folder.rglob("*")
        if p.suffix.lower() in VIDEO_SUFFIXES
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
        and p.is_file()
    )
    stems = [p.stem for p in found]
    repeated = {s for s in stems if stems.count(s) > 1} if len(set(stems)) < len(stems) else set()
    return {
        (p.relative_to(folder).with_suffix("").as_posix() if p.stem in repeated else p.stem): p
        for p in found
    }


@dataclass
class AudioInput:
    """How a video's audio track becomes the fusion model's audio input: ``module`` maps a batch
    of waveforms (B, samples) to it; ``key`` names it in the feature cache's key."""

    module: nn.Module
    key: str


def logmel_input(rate: int, n_mels: int = 64) -> AudioInput:
    """Log-mels (B, n_mels, T), for the audio encoders that train (the CNN, ResNet18)."""
    return AudioInput(LogMel(rate, n_mels), f"logmel{n_mels}@{rate}")


@dataclass
class VideoFeatures:
    ids: list[str]
    frames: torch.Tensor  # (N, K, D) float16, L2-normalised CLIP features
    audio: torch.Tensor  # (N, n_mels, T) log-mels or (N, D) CLAP embeddings, float16
    has_audio: torch.Tensor  # (N,) bool
    skipped: list[str]

    def index(self) -> dict[str, int]:
        return {v: i for i, v in enumerate(self.ids)}

    def save(self, path: Path) -> None:
        stored = {f.name: getattr(self, f.name) for f in fields(self)}
        with atomic_path(path) as tmp:
            torch.save(stored, tmp)

    @staticmethod
    def load(path: Path) -> VideoFeatures:
        return VideoFeatures(**torch.load(path, weights_only=True))


def decode_cached(paths: dict[str, Path], p: DecodeParams, cache: DecodeCache | None, quiet: bool):
    """Decoded clips (from the cache where present, decoding the rest on every core)."""
    decoded: dict[str, Decoded] = {}
    skipped: list[str] = []
    todo = []
    for vid in paths:
        hit = cache.get(vid) if cache is not None else None
        if hit is not None:
            decoded[vid] = hit
        else:
            todo.append(vid)
    bar = progress(total=len(todo), quiet=quiet, desc="decode", unit="clip")
    for vid, (_, result) in zip(todo, decode_many([paths[v] for v in todo], p), strict=True):
        bar.update(1)
        if isinstance(result, DecodeError):
            skipped.append(str(result))
            continue
        decoded[vid] = result
        if cache is not None:
            cache.put(vid, result)
    bar.close()
    if skipped:
        warn(
            f"skipped {len(skipped)} undecodable video(s): "
            + "; ".join(skipped[:3])
            + (" ..." if len(skipped) > 3 else "")
        )
    return decoded, skipped


@torch.no_grad()
def encode_decoded(decoded: dict[str, Decoded], clip, device, audio: AudioInput, batch: int = 32):
    ids = list(decoded)
    to_input = audio.module.to(device)
    frames, mels = [], []
    for i in range(0, len(ids), batch):
        chunk = [decoded[v] for v in ids[i : i + batch]]
        f = torch.from_numpy(np.stack([d.frames for d in chunk])).to(device)
        frames.append(frame_features(clip, f).half().cpu())
        a = torch.from_numpy(np.stack([d.audio for d in chunk])).to(device)
        mels.append(to_input(a).half().cpu())
    has_audio = torch.tensor([decoded[v].has_audio for v in ids], dtype=torch.bool)
    return ids, torch.cat(frames), torch.cat(mels), has_audio


def features_key(
    ids: list[str], paths: dict[str, Path], p: DecodeParams, clip_id: str, audio_key: str
) -> str:
    h = hashlib.sha256(f"{p.key()}|{clip_id}|{audio_key}".encode())
    for v in ids:
        st = paths[v].stat()
        h.update(f"{v}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def load_video_features(
    paths: dict[str, Path],
    p: DecodeParams,
    clip,
    clip_id: str,
    device,
    cache_root: Path | None,
    *,
    audio: AudioInput | None = None,
    quiet: bool = False,
) -> VideoFeatures:
    """Frame features and audio inputs (``audio``; default: 64-band log-mels) of ``paths``, from
    the feature cache when everything matches."""
    audio = audio or logmel_input(p.audio_rate)
    ids = sorted(paths)
    feat_path = None
    if cache_root is not None:
        feat_path = cache_root / f"features-{features_key(ids, paths, p, clip_id, audio.key)}.pt"
        if feat_path.is_file():
            try:
                return VideoFeatures.load(feat_path)
            except (RuntimeError, OSError, TypeError, EOFError):
                warn(f"feature cache {feat_path} is unreadable: computing it again")
    decoded, skipped = decode_cached(
        paths, p, DecodeCache(cache_root, p) if cache_root else None, quiet
    )
    if not decoded:
        raise UserError("no decodable videos")
    vids, frames, mels, has_audio = encode_decoded(decoded, clip, device, audio)
    feats = VideoFeatures(vids, frames, mels, has_audio, skipped)
    log.info(
        f"features: {len(vids)} videos ({int(has_audio.sum())} with audio), {len(skipped)} skipped"
    )
    if feat_path is not None:
        feats.save(feat_path)
    return feats


def clip_identity(cfg, seed: int) -> str:
    """What the frame features depend on: the CLIP model and exactly which weights it has."""
    if cfg.clip_weights is not None:
        st = Path(cfg.clip_weights).stat()
        return f"{cfg.clip_model}|file:{Path(cfg.clip_weights).name}:{st.st_size}:{st.st_mtime_ns}"
    if cfg.pretrained:
        return f"{cfg.clip_model}|tag:{cfg.clip_pretrained}"
    return f"{cfg.clip_model}|random:{seed}"


def audio_input(encoder: str, source: str | None, rate: int, quiet: bool = True) -> AudioInput:
    """What the audio track becomes before the fusion model: CLAP's frozen embedding for
    ``clap`` (its tower loaded from ``source``), 64-band log-mels at ``rate`` otherwise."""
    if encoder != "clap":
        return logmel_input(rate)
    from multi_net.clap import load_clap_audio  # transformers: the pretrained extra

    tower, identity = load_clap_audio(source, quiet)
    return AudioInput(tower, identity)
