"""Generated audio for audio-net's tests: GTZAN's folder layouts, and "genres" a model can learn."""

import numpy as np
import soundfile as sf

from audio_net.dataset import GENRES

SR = 22050


def tone(seconds: float, freq: float = 440.0, sr: int = SR, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    wave = 0.3 * np.sin(2 * np.pi * freq * t).astype(np.float32)
    return np.stack([wave] * channels, axis=1) if channels > 1 else wave


def make_gtzan(root, layout="kaggle", per_genre=3, seconds=4.0):
    """Pure tones in either layout (``genres_original/*.wav`` or ``genres/*.au``)."""
    base = root / ("genres_original" if layout == "kaggle" else "genres")
    ext = "wav" if layout == "kaggle" else "au"
    for g, genre in enumerate(GENRES):
        (base / genre).mkdir(parents=True)
        for i in range(per_genre):
            sf.write(
                base / genre / f"{genre}.{i:05d}.{ext}", tone(seconds, 200 + 60 * g + 5 * i), SR
            )
    return root


def genre_clip(genre: int, seconds: float, rng: np.random.Generator, sr: int = SR) -> np.ndarray:
    """A synthetic "genre": its own pitch register, timbre (harmonics) and pulse rate, with
    jittered pitch, phase, tempo and loudness, over noise. Learnable; chance is 1 in 10."""
    t = np.arange(int(seconds * sr)) / sr
    f0 = 110 * 2 ** (genre * 0.35) * rng.uniform(0.97, 1.03)
    harmonics = 1 + genre % 4
    wave = sum(
        np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 6.3)) / h for h in range(1, harmonics + 1)
    )
    pulse = 1 + genre % 3 + rng.uniform(-0.1, 0.1)  # beats per second
    envelope = 0.55 + 0.45 * np.sin(2 * np.pi * pulse * t) ** 2
    wave = wave * envelope * rng.uniform(0.1, 0.3) + rng.normal(0, 0.02, len(t))
    return wave.astype(np.float32)


def make_learnable_gtzan(root, per_genre=5, seconds=4.0, genres=range(10), seed=0):
    rng = np.random.default_rng(seed)
    base = root / "genres_original"
    for g in genres:
        (base / GENRES[g]).mkdir(parents=True, exist_ok=True)
        for i in range(per_genre):
            path = base / GENRES[g] / f"{GENRES[g]}.{i:05d}.wav"
            sf.write(path, genre_clip(g, seconds, rng), SR)
    return root
