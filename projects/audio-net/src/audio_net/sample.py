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
import logging
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from shared.errors import UserError
from shared.files import data_root
from shared.runs import check_writable_dir

log = logging.getLogger(__name__)

SAMPLE_FOLDER = "sounds-sample"
WORDS = ("yes", "no", "stop", "go", "left", "right")
VOICES = ("en-gb", "en-us", "en-gb-scotland", "en-029", "en-us+f3")
SPEEDS = (120, 150, 180, 210)  # words per minute
PITCHES = (35, 65)  # 0..99
RATE = 22050
KINDS = ("tone-low", "tone-high", "chirp-up", "chirp-down")  # the sounds made without espeak-ng


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
    for kind in KINDS:
        (root / kind).mkdir(parents=True, exist_ok=True)
        for i in range(per_label):
            sf.write(root / kind / f"{kind}-{i:02d}.wav", sound(kind, rng), RATE)
    return root


def is_sample(root: Path) -> bool:
    """Whether ``root`` holds a whole sample this command made: ``new-recording.wav`` and label
    folders of .wav files, the spoken words' or the tones', and nothing else."""
    entries = {p.name: p for p in root.iterdir()}
    labels = set(entries) - {"new-recording.wav"}
    return (
        "new-recording.wav" in entries
        and labels in (set(WORDS), set(KINDS))
        and all(entries[name].is_dir() and any(entries[name].glob("*.wav")) for name in labels)
    )


def write_sample(data_dir: Path | None, quiet: bool = False) -> Path:
    """The sample set in ``<data root>/sounds-sample``: spoken words where espeak-ng is installed,
    generated tones and chirps otherwise. A whole sample already there is kept as it is; a folder
    of that name holding anything else is refused, never mixed with. The sample is made beside
    it and renamed into place, so an interrupted run leaves no half sample."""
    check_writable_dir(data_root(data_dir), "--data-dir")
    root = data_root(data_dir) / SAMPLE_FOLDER
    if root.is_dir() and any(root.iterdir()):
        if not is_sample(root):
            raise UserError(
                f"{root} holds files that are not this sample: move or delete it, then run "
                "'audio-net data sample' again"
            )
        log.info(f"sample: {root} is already there (delete it to make it again)")
        return root
    if root.exists() and not root.is_dir():
        raise UserError(f"{root} is a file, not the sample folder: move or delete it")
    root.parent.mkdir(parents=True, exist_ok=True)
    making = Path(tempfile.mkdtemp(prefix=f".{SAMPLE_FOLDER}-", dir=root.parent))
    try:
        what = make_sample(making)
        if root.is_dir():
            root.rmdir()  # empty (checked above)
        making.rename(root)
    finally:
        shutil.rmtree(making, ignore_errors=True)
    log.info(f"sample: {what} in {root}")
    return root


def make_sample(root: Path) -> str:
    """The sample's files in ``root``; what they are, in words."""
    if espeak() is not None:
        write_spoken_words(root)
        cmd = [espeak(), "-v", "en-us+m3", "-s", "160", "-w", str(root / "new-recording.wav"), "go"]
        subprocess.run(cmd, check=True, capture_output=True)  # a voice no folder holds
        return "240 spoken words (6 labels, espeak-ng)"
    write_sounds(root)
    sf.write(root / "new-recording.wav", sound("chirp-up", np.random.default_rng(99)), RATE)
    return "48 tones and chirps (4 labels; install espeak-ng for spoken words)"


if __name__ == "__main__":  # python -m audio_net.sample DIR: the spoken-word set, into DIR
    import sys

    print(write_spoken_words(Path(sys.argv[1])))
