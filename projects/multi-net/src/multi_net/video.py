"""Decoding with PyAV: K frames sampled uniformly in time, and the audio track at 16 kHz mono.

Many MSR-VTT copies have no audio track: those clips get zero audio and ``has_audio=False``,
never an error. Undecodable or truncated files raise ``DecodeError`` (callers skip and count them).
Decoding is the slow part of video training, so ``decode_many`` uses every core and
``DecodeCache`` keeps each decoded clip on disk, keyed by the sampling parameters.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import av
import numpy as np

from shared.files import atomic_path


class DecodeError(Exception):
    """A video that cannot be decoded."""


@dataclass(frozen=True)
class DecodeParams:
    num_frames: int = 8
    size: int = 224  # frames are resized (shorter side) and center-cropped to size x size
    audio_rate: int = 16000
    audio_seconds: float = 10.0  # audio is cut or zero-padded to this length

    def key(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:12]


@dataclass
class Decoded:
    frames: np.ndarray  # (K, 3, size, size) uint8
    audio: np.ndarray  # (audio_rate * audio_seconds,) float32
    has_audio: bool
    duration: float


def _crop(img: np.ndarray, size: int) -> np.ndarray:
    h, w = img.shape[:2]
    top, left = (h - size) // 2, (w - size) // 2
    return img[top : top + size, left : left + size]


def _resize_frame(frame: av.VideoFrame, size: int) -> np.ndarray:
    w, h = frame.width, frame.height
    scale = size / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    img = frame.reformat(width=nw, height=nh, format="rgb24").to_ndarray()
    return _crop(img, size).transpose(2, 0, 1)


def _video_frames(container, p: DecodeParams) -> tuple[np.ndarray, float]:
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    duration = float(stream.duration * stream.time_base) if stream.duration else None
    if duration is None and container.duration:
        duration = container.duration / 1e6
    if not duration or duration <= 0:
        raise DecodeError("unknown duration")
    start = float(stream.start_time * stream.time_base) if stream.start_time else 0.0
    targets = start + (np.arange(p.num_frames) + 0.5) / p.num_frames * duration
    frames, last = [], None
    for frame in container.decode(stream):
        if frame.time is None:
            continue
        last = frame
        while len(frames) < p.num_frames and frame.time >= targets[len(frames)]:
            frames.append(_resize_frame(frame, p.size))
        if len(frames) == p.num_frames:
            break
    if last is None:
        raise DecodeError("no video frames")
    while len(frames) < p.num_frames:  # a truncated stream: repeat its last frame
        frames.append(_resize_frame(last, p.size))
    return np.stack(frames), duration


def _audio_track(container, p: DecodeParams) -> np.ndarray | None:
    if not container.streams.audio:
        return None
    container.seek(0)
    stream = container.streams.audio[0]
    resampler = av.AudioResampler(format="flt", layout="mono", rate=p.audio_rate)
    chunks, wanted = [], int(p.audio_rate * p.audio_seconds)
    got = 0
    for frame in container.decode(stream):
        for out in resampler.resample(frame):
            chunk = out.to_ndarray().reshape(-1)
            chunks.append(chunk)
            got += len(chunk)
        if got >= wanted:
            break
    if not chunks:
        return None
    audio = np.concatenate(chunks)[:wanted].astype(np.float32)
    return np.pad(audio, (0, wanted - len(audio)))


def decode_video(path: str | Path, p: DecodeParams = DecodeParams()) -> Decoded:
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        raise DecodeError(f"{path}: missing or empty")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise DecodeError(f"{path}: no video stream")
            frames, duration = _video_frames(container, p)
            try:
                audio = _audio_track(container, p)
            except (av.error.FFmpegError, ValueError):
                audio = None  # a broken audio track does not spoil the frames
    except DecodeError:
        raise
    except (av.error.FFmpegError, ValueError, OSError, IndexError) as exc:
        raise DecodeError(
            f"{path}: cannot decode ({exc.__class__.__name__}: {str(exc)[:100]})"
        ) from exc
    has_audio = audio is not None
    if audio is None:
        audio = np.zeros(int(p.audio_rate * p.audio_seconds), np.float32)
    return Decoded(frames, audio, has_audio, duration)


def _decode_or_error(args):
    path, p = args
    try:
        return decode_video(path, p)
    except DecodeError as exc:
        return exc


def decode_many(paths: list[Path], p: DecodeParams, workers: int | None = None):
    """Yield (path, Decoded | DecodeError) in order, decoding in parallel processes."""
    workers = workers or os.cpu_count() or 1
    if workers == 1 or len(paths) == 1:
        for path in paths:
            yield path, _decode_or_error((path, p))
        return
    ctx = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
        yield from zip(
            paths, pool.map(_decode_or_error, [(x, p) for x in paths], chunksize=2), strict=True
        )


class DecodeCache:
    """Decoded clips on disk: ``<root>/<params key>/<video id>.npz``."""

    def __init__(self, root: Path, p: DecodeParams) -> None:
        self.dir = Path(root) / f"decoded-{p.key()}"
        self.p = p

    def path(self, video_id: str) -> Path:
        return self.dir / f"{video_id}.npz"

    def get(self, video_id: str) -> Decoded | None:
        path = self.path(video_id)
        if not path.is_file():
            return None
        try:
            with np.load(path) as z:
                return Decoded(z["frames"], z["audio"], bool(z["has_audio"]), float(z["duration"]))
        except (OSError, ValueError, KeyError):
            return None

    def put(self, video_id: str, d: Decoded) -> None:
        with atomic_path(self.path(video_id)) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, frames=d.frames, audio=d.audio, has_audio=d.has_audio, duration=d.duration)
