"""Your own sounds: any folder of label folders trains, evaluates and predicts with its own labels
(here three generated sound types, short clips at two sample rates, mono and stereo, and the same
file names in every folder); bad folders are one message and leave no run behind."""

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from audio_net.cli import main as cli_main
from shared.checkpoint import load_checkpoint
from testkit import assert_clean_failure

LABELS = ("bird_call", "door_knock", "engine_hum")


def main(argv) -> int:
    return cli_main([str(a) for a in argv])


def sound(label: str, seconds: float, sr: int, rng) -> np.ndarray:
    """A chirp sweeping up (bird), short clicks (knock) or a low buzzing hum (engine), over noise."""
    t = np.arange(int(seconds * sr)) / sr
    if label == "bird_call":
        f = rng.uniform(2000, 2600) + 1500 * (t * rng.uniform(3, 5) % 1)
        wave = np.sin(2 * np.pi * np.cumsum(f) / sr)
    elif label == "door_knock":
        wave = np.zeros_like(t)
        for start in rng.uniform(0, max(seconds - 0.1, 0.01), 4):
            i = int(start * sr)
            burst = np.exp(-np.arange(int(0.05 * sr)) / (0.008 * sr))
            wave[i : i + len(burst)] += burst[: len(wave) - i] * np.sin(2 * np.pi * 180 * t[:1])
            wave[i : i + len(burst)] += (
                burst[: len(wave) - i] * rng.normal(0, 1, len(burst))[: len(wave) - i]
            )
    else:
        f0 = rng.uniform(55, 70)
        wave = sum(np.sin(2 * np.pi * f0 * h * t) / h for h in range(1, 6))
    wave = 0.3 * wave / (np.abs(wave).max() + 1e-9) + rng.normal(0, 0.01, len(t))
    return wave.astype(np.float32)


def write_sounds(root, per_label: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    for label in LABELS:
        (root / label).mkdir(parents=True)
        for i in range(per_label):
            sr = (16000, 44100)[i % 2]
            wave = sound(label, rng.uniform(0.5, 1.6), sr, rng)
            if i % 3 == 0:
                wave = np.stack([wave, 0.8 * wave], axis=1)  # stereo
            sf.write(root / label / f"{i:03d}.{('wav', 'flac')[i % 2]}", wave, sr)
    return root


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("sounds")
    data = write_sounds(root / "sounds", per_label=12)
    run = root / "run"
    argv = ["train", "--data-dir", data, "--model", "cnn", "--no-pretrained", "--epochs", "10"]
    argv += ["--window-seconds", "1", "--hop-seconds", "0.5", "--test-fraction", "0.25"]
    argv += ["--freeze-epochs", "0", "--batch-size", "16", "--device", "cpu", "--quiet"]
    assert main([*argv, "--out", run, "--cache-dir", root / "cache"]) == 0
    return root, data, run


def test_your_own_labels_train_evaluate_and_predict(capsys, trained):
    root, data, run = trained
    summary = json.loads((run / "summary.json").read_text())
    # 12 clips per label: 8 train, 1 validation, 3 test each; chance is 1 in 3
    assert summary["clips"] == {"train": 24, "val": 3, "test": 9}
    assert summary["test_clip_accuracy"] >= 0.75, summary
    assert summary["baseline_clip_accuracy"] >= 0.5, summary
    state = load_checkpoint(run / "checkpoints" / "best.pt", project="audio-net")
    assert state["labels"] == list(LABELS) and state["audio_net_format"] == 2
    assert state["feature_params"]["window_seconds"] == 1.0

    argv = ["evaluate", "--checkpoint", run / "checkpoints" / "best.pt", "--data-dir", data]
    assert main([*argv, "--out", root / "ev", "--cache-dir", root / "cache", "--quiet"]) == 0
    ev = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert ev["clips"] == 9 and ev["clip_accuracy"] == summary["test_clip_accuracy"]

    fresh = write_sounds(root / "new", per_label=2, seed=7)
    files = [fresh / label / "000.wav" for label in LABELS]
    assert main(["predict", *files, "--checkpoint", run / "checkpoints" / "best.pt"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert {r["top"][0]["label"] for r in results} <= set(LABELS)
    assert sum(r["top"][0]["label"] == label for r, label in zip(results, LABELS, strict=True)) >= 2

    # a checkpoint of format 1 (before the label list was named "labels") predicts the same
    old = {k: v for k, v in state.items() if k not in ("labels", "audio_net_format")}
    torch.save({**old, "genres": state["labels"]}, root / "format1.pt")
    assert main(["predict", *files, "--checkpoint", root / "format1.pt"]) == 0
    assert json.loads(capsys.readouterr().out) == results


def test_bad_label_folders_are_one_message(capsys, tmp_path, trained):
    one = write_sounds(tmp_path / "one", per_label=3)
    for label in LABELS[1:]:
        for f in (one / label).iterdir():
            f.unlink()
        (one / label).rmdir()
    empty = write_sounds(tmp_path / "empty", per_label=3)
    (empty / "silence").mkdir()
    notes = tmp_path / "notes"
    for label in ("a", "b"):
        (notes / label).mkdir(parents=True)
        (notes / label / "readme.txt").write_text("not audio")
    thin = write_sounds(tmp_path / "thin", per_label=4)
    for f in sorted((thin / "bird_call").iterdir())[2:]:
        f.unlink()
    base = ["train", "--model", "cnn", "--no-pretrained", "--device", "cpu", "--quiet"]
    cases = [
        ([*base, "--data-dir", one], "one label folder (bird_call)"),
        ([*base, "--data-dir", empty], "label folder(s) silence in"),
        ([*base, "--data-dir", notes], "label folder(s) a, b in"),
        ([*base, "--data-dir", thin], "too few clips of bird_call"),
        ([*base, "--data-dir", thin, "--cv", "3"], "--cv 3 needs at least 3 clips of every label"),
    ]
    for argv, message in cases:
        assert_clean_failure(cli_main, argv, capsys, message, root=tmp_path)
    root, data, run = trained
    other = write_sounds(tmp_path / "other", per_label=3)
    (other / "door_knock").rename(other / "doorbell")
    argv = ["evaluate", "--checkpoint", run / "checkpoints" / "best.pt", "--data-dir", other]
    assert_clean_failure(cli_main, argv, capsys, "are not the checkpoint's", root=tmp_path)


def test_predict_loads_no_training_code(trained, tmp_path):
    """`predict` in a fresh interpreter: the classifier and the features, not the trainer."""
    from testkit import TRAINING_ONLY, modules_loaded

    root, data, run = trained
    argv = [
        "predict",
        data / LABELS[0] / "000.wav",
        "--checkpoint",
        run / "checkpoints" / "best.pt",
    ]
    loaded = modules_loaded("audio_net.cli", argv, tmp_path)
    assert "audio_net.predict" in loaded
    banned = {"audio_net.train", "audio_net.baseline", *TRAINING_ONLY}
    assert not loaded & banned, loaded & banned
