"""A synthetic audio-visual retrieval benchmark with known answers: ``multi-net data synth``.

Each clip is a real H.264 (+ AAC) file: a shape of a colour moving in a direction over a noisy,
slowly changing background, with a sound on the audio track, or no audio stream at all. Every
attribute lives in one place only: colour and shape in the frames, direction in their ORDER (any
single frame's position is symmetric around the trajectory's random centre), the sound in the
audio. Captions state all four in one of several phrasings, so a model must read every modality,
and the words, to find the right clip.

The test split (and the validation split) holds ONE clip per attribute combination, so its
captions are unique and R@1 can reach 100; the audio-masked score shows what the sound adds.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from shared.errors import UserError
from shared.files import write_text
from shared.progress import progress

SHAPES = ("circle", "square", "triangle")
COLOURS = {"red": (220, 40, 40), "green": (40, 190, 60), "blue": (50, 80, 230)}
DIRECTIONS = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
SOUNDS = ("low", "high", "noise", "none")  # "none": the file has no audio stream
TONE_HZ = {"low": 220.0, "high": 1760.0}

SIZE, FPS, SECONDS, AUDIO_RATE = 64, 8, 3.0, 16000

SOUND_WORDS = {
    "low": ("a low tone plays", "a deep hum sounds", "with a low tone"),
    "high": ("a high tone plays", "a high beep sounds", "with a high tone"),
    "noise": ("static hisses", "noise crackles", "with static noise"),
    "none": ("all is silent", "nothing can be heard", "in silence"),
}
PHRASINGS = (
    "a {colour} {shape} slides {direction} while {sound0}",
    "{colour} {shape} moving {direction}, {sound1}",
    "a {shape}, {colour}, goes {direction} {sound2}",
)


@dataclass(frozen=True)
class Attributes:
    shape: str
    colour: str
    direction: str
    sound: str

    def caption(self, phrasing: int) -> str:
        words = SOUND_WORDS[self.sound]
        return PHRASINGS[phrasing].format(
            colour=self.colour,
            shape=self.shape,
            direction=self.direction,
            sound0=words[0],
            sound1=words[1],
            sound2=words[2],
        )


def combinations(small: bool = False) -> list[Attributes]:
    """Every attribute combination: 3 x 3 x 4 x 4 = 144; ``small``: 2 of each, 16 (a benchmark
    that trains in a minute, for tests and a first try)."""
    if small:
        return [
            Attributes(*a)
            for a in itertools.product(
                SHAPES[:2], ("red", "blue"), ("left", "up"), ("high", "none")
            )
        ]
    return [Attributes(*a) for a in itertools.product(SHAPES, COLOURS, DIRECTIONS, SOUNDS)]


def shape_mask(shape: str, cx: float, cy: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[0:SIZE, 0:SIZE] + 0.5
    dx, dy = xx - cx, yy - cy
    if shape == "circle":
        return dx * dx + dy * dy <= r * r
    if shape == "square":
        return (np.abs(dx) <= r * 0.85) & (np.abs(dy) <= r * 0.85)
    # an upward triangle: inside the band below its apex and between its two slanted sides
    return (dy <= r) & (dy >= -r) & (np.abs(dx) <= (dy + r) * 0.6)


def frames_of(a: Attributes, rng: np.random.Generator) -> list[np.ndarray]:
    n = int(SECONDS * FPS)
    r = rng.uniform(7, 11)
    travel = rng.uniform(22, 34)  # pixels over the clip
    margin = r + travel / 2 + 1
    cx, cy = rng.uniform(margin, SIZE - margin, 2)
    vx, vy = DIRECTIONS[a.direction]
    colour = np.clip(np.array(COLOURS[a.colour]) + rng.integers(-25, 26, 3), 0, 255)
    base = rng.integers(40, 140, 3).astype(np.float32)
    tilt = rng.normal(0, 25, 3).astype(np.float32)
    ramp = np.linspace(-1, 1, SIZE, dtype=np.float32)
    out = []
    for i in range(n):
        u = i / (n - 1) - 0.5  # -0.5 .. 0.5: positions symmetric around the centre
        x, y = cx + vx * travel * u, cy + vy * travel * u
        drift = 15 * np.sin(2 * np.pi * (i / n + rng.uniform()))
        img = base + drift + tilt[None, None, :] * ramp[None, :, None]
        img = np.broadcast_to(img, (SIZE, SIZE, 3)) + rng.normal(0, 12, (SIZE, SIZE, 3))
        img[shape_mask(a.shape, x, y, r)] = colour
        out.append(np.clip(img, 0, 255).astype(np.uint8))
    return out


def audio_of(a: Attributes, rng: np.random.Generator) -> np.ndarray | None:
    if a.sound == "none":
        return None
    t = np.arange(int(SECONDS * AUDIO_RATE)) / AUDIO_RATE
    loud = rng.uniform(0.15, 0.35)
    if a.sound == "noise":
        wave = rng.normal(0, loud / 2, len(t))
    else:
        f = TONE_HZ[a.sound] * rng.uniform(0.93, 1.07)
        wave = loud * np.sin(2 * np.pi * f * t + rng.uniform(0, 6.3))
    return (wave + rng.normal(0, 0.005, len(t))).astype(np.float32)


def write_clip(path: Path, a: Attributes, rng: np.random.Generator) -> None:
    frames, audio = frames_of(a, rng), audio_of(a, rng)
    with av.open(str(path), "w") as out:
        v = out.add_stream("libx264", rate=FPS)
        v.width, v.height, v.pix_fmt = SIZE, SIZE, "yuv420p"
        v.options = {"preset": "ultrafast", "crf": "18"}
        s = None
        if audio is not None:
            s = out.add_stream("aac", rate=AUDIO_RATE)
            s.layout = "mono"
        for img in frames:
            for packet in v.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in v.encode():
            out.mux(packet)
        if s is not None:
            for start in range(0, len(audio), 1024):
                frame = av.AudioFrame.from_ndarray(
                    audio[None, start : start + 1024], format="flt", layout="mono"
                )
                frame.sample_rate = AUDIO_RATE
                for packet in s.encode(frame):
                    out.mux(packet)
            for packet in s.encode():
                out.mux(packet)


MAX_VIDEOS = 99_999  # clip names are synth00000..synth99999 (the default 1,440 take about a minute)


def plan(videos: int, small: bool = False) -> list[tuple[str, Attributes]]:
    """(split, attributes) per clip: one clip per combination in test and in val, the rest train
    (cycling through the combinations, so every combination trains about equally often)."""
    combos = combinations(small)
    n = len(combos)
    if videos > MAX_VIDEOS:
        raise UserError(
            f"--videos {videos}: at most {MAX_VIDEOS:,} clips (their names have five digits; "
            f"a clip is about 30 KB and 30 ms to write, the default is {DEFAULT_VIDEOS:,})"
        )
    if videos < 3 * n:
        raise UserError(
            f"--videos {videos}: the benchmark needs at least {3 * n} clips (one per attribute "
            "combination for test, one for validation, and at least one to train on)"
        )
    out = [("test", a) for a in combos] + [("val", a) for a in combos]
    out += [("train", combos[i % n]) for i in range(videos - 2 * n)]
    return out


DEFAULT_VIDEOS, DEFAULT_SMALL_VIDEOS = 1440, 96
PRODUCTS = ("videos", "annotations.json")


def generate(
    out: Path,
    videos: int = DEFAULT_VIDEOS,
    seed: int = 0,
    quiet: bool = False,
    small: bool = False,
    force: bool = False,
) -> dict:
    """Write ``out/videos/*.mp4`` and ``out/annotations.json`` (plain records with a split).

    ``out`` must be absent or empty (``force``: its ``videos/`` and ``annotations.json`` are
    replaced, nothing else is touched). Everything is written into a temporary folder beside it
    and moved into place at the end, so an interrupted run leaves the folder as it was.
    """
    out = Path(out)
    clips = plan(videos, small)
    if out.is_dir() and any(out.iterdir()) and not force:
        raise UserError(
            f"--out {out} is not empty: give a new or empty folder (or --force to replace its "
            "videos/ and annotations.json)"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        summary = _write(staging, clips, seed, quiet, small)
        _publish(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {**summary, "out": str(out)}


def _publish(staging: Path, out: Path) -> None:
    """Move the finished ``staging`` folder's products into ``out``."""
    umask = os.umask(0)
    os.umask(umask)
    staging.chmod(0o777 & ~umask)  # mkdtemp made it private
    if not out.exists():
        staging.rename(out)
        return
    for name in PRODUCTS:  # --force: the old products go into staging, removed with it
        if (out / name).exists():
            (out / name).rename(staging / f".old-{name}")
        (staging / name).rename(out / name)


def _write(out: Path, clips: list, seed: int, quiet: bool, small: bool) -> dict:
    folder = out / "videos"
    folder.mkdir()
    rng = np.random.default_rng(seed)
    records = []
    for i, (split, a) in enumerate(progress(clips, quiet=quiet, desc="synth", unit="clip")):
        vid = f"synth{i:05d}"
        write_clip(folder / f"{vid}.mp4", a, rng)
        phrasings = [0, 1, 2] if split == "train" else [int(rng.integers(3))]
        records.append(
            {
                "video_id": vid,
                "captions": [a.caption(p) for p in phrasings],
                "category": SHAPES.index(a.shape),
                "category_name": a.shape,
                "split": split,
                "attributes": {
                    "shape": a.shape,
                    "colour": a.colour,
                    "direction": a.direction,
                    "sound": a.sound,
                },
            }
        )
    write_text(out / "annotations.json", json.dumps(records, indent=1) + "\n")
    counts = {s: sum(r["split"] == s for r in records) for s in ("train", "val", "test")}
    return {
        "out": str(out),
        "videos": len(records),
        **counts,
        "combinations": len(combinations(small)),
    }
