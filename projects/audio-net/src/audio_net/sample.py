"""``audio-net data sample``: a small labelled sound set a fresh clone can train on, made here (no
download: GTZAN comes only as one 1.2 GB archive), in ``<data root>/sounds-sample/<label>/``.

- With ``espeak-ng`` installed (Debian/Ubuntu: ``apt-get install espeak-ng``; macOS: ``brew
  install espeak-ng``): six words spoken by five voices at four speeds and two pitches, 240 clips
  of 0.3-0.8 s, the way a user's own recordings look.
- Without it: four kinds of sound (a low tone, a high tone, a rising and a falling chirp), each
  with jittered pitch, length and loudness over noise, 48 clips of 1-2 s.

Either way: folders named for their labels, any command's ``--data-dir``, and ``new-recording.wav``
beside them, a clip of one label that is in no folder (for ``predict``).
"""

from __future__ import annotations

import itertools
import shutil
import subprocess
from pathlib import Path

import numpy as np
import soundfile as sf

from shared.errors import UserError
from shared.paths import data_root
from shared.progress import info

SAMPLE_FOLDER = "sounds-sample"
WORDS = ("yes", "no", "stop", "go", "left", "right")
VOICES = ("en-gb", "en-us", "en-gb-scotland", "en-029", "en-us+f3")
SPEEDS = (120, 150, 180, 210)  # words per minute
PITCHES = (35, 65)  # 0..99
RATE = 22050


def espeak() -> str | None:
    return shutil.which("espeak-ng")


def write_spoken_words(
    root: Path,
    words=WORDS,
    voices=VOICES,
    speeds=SPEEDS,
    pitches=PITCHES,
) -> Path:
    """Speak every word in every voice, speed and pitch into ``root/<word>/``; returns ``root``.
    The default is 6 words x 5 voices x 4 speeds x 2 pitches = 240 clips of 0.3-0.8 s."""
    exe = espeak()
    if exe is None:
        raise UserError("espeak-ng is not installed (apt-get install espeak-ng)")
    for word in words:
        (root / word).mkdir(parents=True, exist_ok=True)
    for word, voice, speed, pitch in itertools.product(words, voices, speeds, pitches):
        out = root / word / f"{voice.replace('+', '_')}-{speed}-{pitch}.wav"
        cmd = [exe, "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(out), word]
        subprocess.run(cmd, check=True, capture_output=True)
    return root


def sound(kind: str, rng: np.random.Generator) -> np.ndarray:
    """One clip of ``kind`` (tone-low, tone-high, chirp-up, chirp-down), 1-2 s at 22,050 Hz."""
    seconds = rng.uniform(1.0, 2.0)
    t = np.arange(int(seconds * RATE)) / RATE
    low, high = 220 * rng.uniform(0.9, 1.1), 880 * rng.uniform(0.9, 1.1)
    if kind.startswith("tone"):
        phase = 2 * np.pi * (low if kind == "tone-low" else high) * t
    else:  # a linear chirp between the two, up or down
        f0, f1 = (low, high) if kind == "chirp-up" else (high, low)
        phase = 2 * np.pi * (f0 * t + (f1 - f0) * t**2 / (2 * seconds))
    wave = np.sin(phase) * rng.uniform(0.1, 0.4) + rng.normal(0, 0.01, len(t))
    return wave.astype(np.float32)


def write_sounds(root: Path, per_label: int = 12, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for kind in ("tone-low", "tone-high", "chirp-up", "chirp-down"):
        (root / kind).mkdir(parents=True, exist_ok=True)
        for i in range(per_label):
            sf.write(root / kind / f"{kind}-{i:02d}.wav", sound(kind, rng), RATE)
    return root


def write_sample(data_dir: Path | None, quiet: bool = False) -> Path:
    """The sample set in ``<data root>/sounds-sample``: spoken words where espeak-ng is installed,
    generated tones and chirps otherwise. A folder already there is kept as it is."""
    root = data_root(data_dir) / SAMPLE_FOLDER
    if root.is_dir() and any(root.iterdir()):
        info(f"sample: {root} is already there (delete it to make it again)", quiet)
        return root
    if espeak() is not None:
        write_spoken_words(root)
        cmd = [espeak(), "-v", "en-us+m3", "-s", "160", "-w", str(root / "new-recording.wav"), "go"]
        subprocess.run(cmd, check=True, capture_output=True)  # a voice no folder holds
        what = "240 spoken words (6 labels, espeak-ng)"
    else:
        write_sounds(root)
        sf.write(root / "new-recording.wav", sound("chirp-up", np.random.default_rng(99)), RATE)
        what = "48 tones and chirps (4 labels; install espeak-ng for spoken words)"
    info(f"sample: {what} in {root}", quiet)
    return root


if __name__ == "__main__":  # python -m audio_net.sample DIR: the spoken-word set, into DIR
    import sys

    print(write_spoken_words(Path(sys.argv[1])))
