import json
import statistics

import numpy as np
import pytest
import soundfile as sf
import torch
from audio_net_data import make_learnable_gtzan

from audio_net.augment import AugmentConfig, augment
from audio_net.cli import COMMANDS, main
from shared.checkpoint import load_checkpoint
from testkit import cli_help


def test_help_lists_the_subcommands_without_importing_torch(capsys):
    shown = cli_help(main, COMMANDS, "audio_net.cli", capsys)
    assert all(name in shown.text for name in COMMANDS)
    assert shown.module_status == 0 and "usage: audio-net" in shown.module_text
    assert shown.heavy_imports == {}  # no --help imports torch, matplotlib or gradio


def test_augmentations_keep_shapes_and_are_seeded():
    x, y = torch.randn(8, 128, 130), torch.arange(8) % 10
    cfg = AugmentConfig(pitch_shift=4, time_stretch=0.2)
    a = augment(x, y, cfg, torch.Generator().manual_seed(1), 10)
    b = augment(x, y, cfg, torch.Generator().manual_seed(1), 10)
    assert a[0].shape == x.shape and torch.equal(a[0], b[0])
    assert torch.allclose(a[1].sum(1), torch.ones(8))
    off = AugmentConfig(0, 0, 0, 0, 0, 0)
    same = augment(x, y, off, torch.Generator().manual_seed(1), 10)
    assert torch.equal(same[0], x)


def test_pitch_shift_moves_energy_along_the_mel_axis():
    from audio_net.augment import warp

    x = torch.zeros(64, 128, 130)
    x[:, 60] = 1.0  # one band lit
    out = warp(x, 8, 0.0, torch.Generator().manual_seed(0))
    peaks = out.mean(2).argmax(1)
    assert peaks.min() >= 52 and peaks.max() <= 68 and len(set(peaks.tolist())) > 5


def test_auto_model_is_resnet18_with_imagenet_weights_and_the_cnn_without():
    from audio_net.config import TrainConfig

    default = TrainConfig().settle()  # train's first step
    assert default.model == "resnet18" and default.freeze_epochs == 1
    scratch = TrainConfig(pretrained=False).settle()
    assert scratch.model == "cnn" and scratch.lr == 3e-3 and scratch.freeze_epochs == 0
    assert TrainConfig(pretrained=False, weights="w.pth").settle().model == "resnet18"
    assert TrainConfig(pretrained=False, model="resnet18").settle().model == "resnet18"
    assert TrainConfig(pretrained=False, lr=1e-2).settle().lr == 1e-2  # a given value wins


def last_json(capsys):
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


@pytest.fixture()
def genres(tmp_path):
    """Learnable generated genres, 5 clips of 4 s each: no real data needed."""
    return make_learnable_gtzan(tmp_path / "gtzan", per_genre=5, seconds=4.0)


def common(tmp_path, *extra):
    return [
        "--no-pretrained",
        "--device",
        "cpu",
        "--quiet",
        "--batch-size",
        "16",
        "--cache-dir",
        str(tmp_path / "cache"),
        *map(str, extra),
    ]


def test_train_evaluate_predict_on_generated_genres(capsys, genres, tmp_path):
    out = tmp_path / "run"
    argv = [
        "train",
        "--data-dir",
        genres,
        "--model",
        "cnn",
        "--epochs",
        "12",
        "--out",
        out,
        "--freeze-epochs",
        "0",
    ]
    assert main([str(a) for a in argv] + common(tmp_path)) == 0
    summary = last_json(capsys)
    # 5 clips per genre: 3 train, 1 validation, 1 test each (chance: 0.10)
    assert summary["clips"] == {"train": 30, "val": 10, "test": 10} and summary["epochs"] == 12
    assert summary["test_clip_accuracy"] >= 0.5 and summary["baseline_clip_accuracy"] >= 0.5
    for name in ("curves", "confusion_matrix", "spectrograms", "baseline_confusion_matrix"):
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
                str(genres),
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
    assert ev["baseline_clip_accuracy"] == summary["baseline_clip_accuracy"]

    good = next((genres / "genres_original" / "jazz").glob("*.wav"))
    (tmp_path / "bad.wav").write_bytes(b"not audio")
    sf.write(tmp_path / "short.wav", np.zeros(1000, np.float32), 22050)
    sf.write(tmp_path / "stereo.flac", np.zeros((3 * 44100, 2), np.float32) + 0.01, 44100)
    files = [
        good,
        tmp_path / "bad.wav",
        tmp_path / "short.wav",
        tmp_path / "stereo.flac",
    ]
    code = main(["predict", *map(str, files), "--checkpoint", str(ckpt)])
    out, err = capsys.readouterr()
    results = json.loads(out)
    assert code == 0 and len(results) == 4
    top = results[0]["top"]
    assert len(top) == 3 and top[0]["probability"] >= top[1]["probability"]
    assert "error" in results[1] and "shorter" in results[2]["error"] and "top" in results[3]
    assert err.count("warning: skipped") == 2  # each unusable file: one line on stderr
    # a missing file: one line and status 2 before any model loads, nothing on stdout
    assert main(["predict", str(good), str(tmp_path / "missing.wav"), "--checkpoint", "x"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "missing.wav: no such file" in err


def test_cross_validation_reports_network_and_baseline(capsys, genres, tmp_path):
    out = tmp_path / "cv"
    argv = [
        "train",
        "--data-dir",
        genres,
        "--model",
        "cnn",
        "--cv",
        "3",
        "--epochs",
        "8",
        "--out",
        out,
        "--freeze-epochs",
        "0",
    ]
    assert main([str(a) for a in argv] + common(tmp_path)) == 0
    s = last_json(capsys)
    assert s["cv_folds"] == 3 and s["clips"] == 50 and len(s["folds"]) == 3
    assert sum(f["clips"] for f in s["folds"]) == 50
    # both beat chance (0.10) by a wide margin on learnable genres
    assert s["test_clip_accuracy"] >= 0.4 and s["baseline_clip_accuracy"] >= 0.5
    folds = [f["test_clip_accuracy"] for f in s["folds"]]
    assert s["test_clip_accuracy_std"] == round(statistics.pstdev(folds), 4)
    assert all(f["planned_epochs"] == s["epochs"] for f in s["folds"])
    assert 1 <= s["final_epochs"] <= 8
    final = load_checkpoint(out / "checkpoints" / "last.pt", project="audio-net")
    assert len(final["split"]["train"]) == 50 and final["epoch"] == s["final_epochs"]
    for k in (1, 2, 3):  # each fold is a finished run of its own: figures and its summary
        fold = out / "folds" / f"fold{k}"
        assert (fold / "figures" / "baseline_confusion_matrix.png").is_file()
        assert json.loads((fold / "summary.json").read_text())["fold"] == k


def test_backbone_stays_frozen_for_freeze_epochs(genres, tmp_path, monkeypatch):
    """``--freeze-epochs 2``: the body keeps its first weights through two epochs while the head
    trains; from the third on, the body trains too (seen at each epoch's validation)."""
    from audio_net import train as audio_train

    first, snapshots = {}, []
    classifier, validation = audio_train.SpectrogramClassifier, audio_train.validation

    def built(*args, **kwargs):
        model = classifier(*args, **kwargs)
        first["body"] = [p.detach().clone() for p in model.body_parameters()]
        first["head"] = [p.detach().clone() for p in model.head_parameters()]
        return model

    def spied(eval_model, model, val):
        body, head = model.body_parameters(), model.head_parameters()
        snapshots.append(([p.detach().clone() for p in body], [p.detach().clone() for p in head]))
        return validation(eval_model, model, val)

    monkeypatch.setattr(audio_train, "SpectrogramClassifier", built)
    monkeypatch.setattr(audio_train, "validation", spied)
    argv = ["train", "--data-dir", genres, "--model", "cnn", "--epochs", "3"]
    argv += ["--freeze-epochs", "2", *common(tmp_path)]
    assert main([str(a) for a in [*argv, "--out", tmp_path / "r"]]) == 0
    same = lambda a, b: all(torch.equal(x, y) for x, y in zip(a, b, strict=True))  # noqa: E731
    assert len(snapshots) == 3
    assert same(snapshots[1][0], first["body"])  # two frozen epochs: the body never moved
    assert not same(snapshots[0][1], first["head"])  # while the head trained
    assert not same(snapshots[2][0], first["body"])  # and after them, the body trains


def test_resumed_run_equals_the_straight_run(capsys, genres, tmp_path):
    base = [
        "train",
        "--data-dir",
        str(genres),
        "--model",
        "cnn",
        "--epochs",
        "3",
        "--freeze-epochs",
        "1",
        *common(tmp_path),
    ]
    assert main([*base, "--out", str(tmp_path / "straight")]) == 0
    assert main([*base, "--out", str(tmp_path / "cut"), "--max-minutes", "0.00001"]) == 0
    assert main([*base, "--out", str(tmp_path / "cut"), "--resume", "latest"]) == 0
    capsys.readouterr()
    a = load_checkpoint(tmp_path / "straight/checkpoints/last.pt", project="audio-net")
    b = load_checkpoint(tmp_path / "cut/checkpoints/last.pt", project="audio-net")
    assert a["step"] == b["step"] and all(
        torch.equal(a["model"][k], b["model"][k]) for k in a["model"]
    )


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


def test_resnet18_trains_on_real_clips(capsys, tiny_gtzan, tmp_path):
    out = tmp_path / "run"
    argv = [
        "train",
        "--data-dir",
        str(tiny_gtzan),
        "--model",
        "resnet18",
        "--epochs",
        "2",
        "--freeze-epochs",
        "1",
        "--out",
        str(out),
        *common(tmp_path),
    ]
    assert main(argv) == 0
    summary = last_json(capsys)
    assert (
        summary["clips"] == {"train": 10, "val": 10, "test": 10} and summary["model"] == "resnet18"
    )
    assert summary["train_seconds"] > 0 and "baseline_clip_accuracy" in summary


def test_a_network_below_its_baseline_says_so_with_what_to_try(capsys):
    from audio_net.config import TrainConfig
    from audio_net.train import below_baseline

    assert below_baseline(1.0, 1.0, TrainConfig()) == {}
    small = below_baseline(0.33, 1.0, TrainConfig(model="cnn", pretrained=False))
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "0.33" in err and "below the baseline (1.00)" in err
    assert "--epochs auto" in small["warning"] and "--model resnet18" in small["warning"]
    assert "--model resnet18" not in below_baseline(0.5, 0.9, TrainConfig())["warning"]


def test_the_demo_page_speaks_of_genres_only_for_gtzan_labels():
    from audio_net.dataset import GENRES
    from audio_net.demo import page_words

    assert page_words(list(reversed(GENRES)))["what"] == "music genre"
    words = page_words(["bird_call", "door_knock"])
    assert "genre" not in " ".join(words.values()) and words["label"] == "label"


def test_bench_prints_one_json_object(capsys, tmp_path):
    """``bench`` featurizes, trains and predicts, and prints one JSON object (it once failed
    before printing: a batch helper lacked its label count, and no test ran it)."""
    from audio_net_data import make_gtzan

    data = make_gtzan(tmp_path / "g", per_genre=2, seconds=4.0)
    argv = ["bench", "--model", "cnn", "--data-dir", data, "--no-download", "--clips", "8"]
    argv += ["--batch-size", "8", "--train-steps", "1", "--device", "cpu", "--quiet"]
    assert main([str(a) for a in [*argv, "--out", tmp_path / "bench"]]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["model"] == "cnn" and out["clips"] == 8 and out["train_steps_timed"] == 1
    assert out["train_windows_per_s"] > 0 and out["predict_windows_per_s"] > 0
