"""A spoken-word data set the way a user's recordings look: words spoken by espeak-ng's voices at
several speeds and pitches, one folder per word (``root/<word>/<voice>-<speed>-<pitch>.wav``).

Debian ships ``espeak-ng`` (``.ci/run`` installs it); without it the tests that need this set
skip and say why.
"""

from __future__ import annotations

import itertools
import shutil
import subprocess
from pathlib import Path

WORDS = ("yes", "no", "stop", "go", "left", "right")
VOICES = ("en-gb", "en-us", "en-gb-scotland", "en-029", "en-us+f3")
SPEEDS = (120, 150, 180, 210)  # words per minute
PITCHES = (35, 65)  # 0..99


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
        raise RuntimeError("espeak-ng is not installed (apt-get install espeak-ng)")
    for word in words:
        (root / word).mkdir(parents=True, exist_ok=True)
    for word, voice, speed, pitch in itertools.product(words, voices, speeds, pitches):
        out = root / word / f"{voice.replace('+', '_')}-{speed}-{pitch}.wav"
        cmd = [exe, "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(out), word]
        subprocess.run(cmd, check=True, capture_output=True)
    return root


if __name__ == "__main__":  # python -m testkit.spoken DIR: the set the README's figure names
    import sys

    print(write_spoken_words(Path(sys.argv[1])))
