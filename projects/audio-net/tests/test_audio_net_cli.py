import json

import numpy as np
import pytest
import soundfile as sf
import torch

from audio_net.augment import AugmentConfig, augment
from audio_net.cli import COMMANDS, main
from shared.testing import check_cli_help


def test_help_lists_the_subcommands(capsys):
    check_cli_help(main, COMMANDS, "audio_net.cli", "audio-net", capsys)


def test_augmentations_keep_shapes_and_are_seeded():
    x, y = torch.randn(8, 128, 130), torch.arange(8) % 10
    a = augment(x, y, AugmentConfig(), torch.Generator().manual_seed(1), 10)
    b = augment(x, y, AugmentConfig(), torch.Generator().manual_seed(1), 10)
    assert a[0].shape == x.shape and torch.equal(a[0], b[0])
    assert torch.allclose(a[1].sum(1), torch.ones(8))
    off = AugmentConfig(0, 0, 0, 0, 0, 0)
    same = augment(x, y, off, torch.Generator().manual_seed(1), 10)
    assert torch.equal(same[0], x)


def last_json(capsys):
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


@pytest.fixture()
def tiny_gtzan(real_data, tmp_path):
    """3 real clips per genre, cut to 5 s, to keep two CPU epochs fast."""
    root = tmp_path / "gtzan" / "genres_original"
    for genre_dir in sorted((real_data / "gtzan" / "genres_original").iterdir()):
        (root / genre_dir.name).mkdir(parents=True)
        for wav in sorted(genre_dir.glob("*.wav"))[:3]:
            data, sr = sf.read(wav)
            sf.write(root / genre_dir.name / wav.name, data[: 5 * sr], sr)
    return tmp_path / "gtzan"


def test_train_evaluate_predict_end_to_end(capsys, tiny_gtzan, tmp_path):
    out = tmp_path / "run"
    argv = [
        "train",
        "--data-dir",
        str(tiny_gtzan),
        "--no-pretrained",
        "--epochs",
        "2",
        "--batch-size",
        "16",
        "--freeze-epochs",
        "1",
        "--val-fraction",
        "0.34",
        "--test-fraction",
        "0.34",
        "--out",
        str(out),
        "--device",
        "cpu",
        "--quiet",
        "--cache-dir",
        str(tmp_path / "cache"),
    ]
    assert main(argv) == 0
    summary = last_json(capsys)
    assert summary["epochs"] == 2 and summary["clips"] == {"train": 10, "val": 10, "test": 10}
    assert 0 <= summary["test_clip_accuracy"] <= 1 and "test_macro_f1" in summary
    for name in ("curves", "confusion_matrix", "spectrograms"):
        assert (out / "figures" / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
    assert list((tmp_path / "cache").glob("features-*.pt"))

    ckpt = out / "checkpoints" / "best.pt"
    assert (
        main(
            [
                "evaluate",
                "--checkpoint",
                str(ckpt),
                "--data-dir",
                str(tiny_gtzan),
                "--out",
                str(tmp_path / "ev"),
                "--cache-dir",
                str(tmp_path / "cache"),
                "--quiet",
            ]
        )
        == 0
    )
    ev = last_json(capsys)
    assert ev["clips"] == 10 and ev["clip_accuracy"] == summary["test_clip_accuracy"]

    good = next((tiny_gtzan / "genres_original" / "jazz").glob("*.wav"))
    (tmp_path / "bad.wav").write_bytes(b"not audio")
    sf.write(tmp_path / "short.wav", np.zeros(1000, np.float32), 22050)
    sf.write(tmp_path / "stereo.flac", np.zeros((3 * 44100, 2), np.float32) + 0.01, 44100)
    code = main(
        [
            "predict",
            str(good),
            str(tmp_path / "bad.wav"),
            str(tmp_path / "short.wav"),
            str(tmp_path / "stereo.flac"),
            str(tmp_path / "missing.wav"),
            "--checkpoint",
            str(ckpt),
        ]
    )
    results = json.loads(capsys.readouterr().out)
    assert code == 0 and len(results) == 5
    assert (
        len(results[0]["top"]) == 3
        and results[0]["top"][0]["probability"] >= results[0]["top"][1]["probability"]
    )
    assert "error" in results[1] and "shorter" in results[2]["error"] and "top" in results[3]
    assert "no such file" in results[4]["error"]


def test_bad_inputs(capsys, tmp_path):
    from shared.checkpoint import save_checkpoint

    other = save_checkpoint(tmp_path / "o.pt", {}, project="austen-net")
    for argv, message in [
        (["predict", "x.wav"], "needs --checkpoint"),
        (["predict", "x.wav", "--checkpoint", str(other)], "'austen-net', not 'audio-net'"),
        (["train", "--epochs", "0"], "at least 1"),
        (["train", "--data-dir", str(tmp_path), "--no-download"], "data download"),
    ]:
        assert main(argv) == 2, argv
        assert message in capsys.readouterr().err
