"""The Audio Spectrogram Transformer as a backbone, tested offline on a tiny random AST that
transformers builds from a config and saves as a folder (the real checkpoint's loading code is the
same code): features equal to ``ASTFeatureExtractor`` (<= 1e-4), logits equal to
``ASTForAudioClassification`` (<= 1e-4), a few steps lower the loss, and ``train --model ast``
runs end to end through ``predict``, ``evaluate`` and the ONNX export."""

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from audio_net_data import GENRES, genre_clip

from audio_net.ast_backbone import ASTBackbone, normalisation, pretrained_backbone, source_features
from audio_net.cli import main
from audio_net.features import KaldiFbank, featurize_waves
from audio_net.model import SpectrogramClassifier
from shared.errors import UserError
from testkit import assert_clean_failure, random_pretrained

transformers = pytest.importorskip("transformers")

PROJECT = Path(__file__).resolve().parents[1]
RATE = 16000
LABELS = ["blues", "classical", "country"]


@pytest.fixture(scope="module")
def ast_folder(tmp_path_factory):
    """A 2-layer AST, 32 wide, reading 128 frames (1.28 s) of 32 mel bins, its head of 3 labels,
    every weight perturbed, with a feature extractor of AudioSet's normalisation: built by the
    command NOTES.md gives users (tools/random_pretrained.py ast --tiny)."""
    out = tmp_path_factory.mktemp("ast") / "ast-random"
    return random_pretrained(PROJECT, "ast", out, *LABELS)


def wave(seconds: float, seed: int) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    return torch.from_numpy(genre_clip(seed % 10, seconds, rng, RATE))


@pytest.mark.parametrize("seconds", [0.7, 1.28, 3.1])
def test_features_equal_the_feature_extractor(ast_folder, seconds):
    """Every window our batched Kaldi front end cuts equals the extractor run on that window's
    samples (a short clip zero-padded as the extractor pads it), after AST's normalisation."""
    p = source_features(ast_folder, None)
    assert (p.sample_rate, p.n_mels, p.window_frames, p.frontend) == (RATE, 32, 128, "kaldi_fbank")
    mean, scale = normalisation(ast_folder)
    extractor = transformers.ASTFeatureExtractor.from_pretrained(ast_folder)
    w = wave(seconds, 1)
    windows = featurize_waves([w], KaldiFbank(p), torch.device("cpu"))[0]
    assert len(windows) == 1 + max(0, -(-(KaldiFbank(p).frames(len(w)) - 128) // p.hop_frames))
    for i, window in enumerate(windows):
        start = i * p.hop_frames * p.hop_length
        piece = w[start : start + (128 - 1) * p.hop_length + p.n_fft]
        theirs = extractor(piece.numpy(), sampling_rate=RATE, return_tensors="pt").input_values[0]
        ours = ((window - mean) / scale).T
        assert (ours - theirs).abs().max() < 1e-4, i


def test_logits_equal_transformers(ast_folder):
    backbone = pretrained_backbone(ast_folder, LABELS)  # the same labels: the head is kept
    mean, scale = normalisation(ast_folder)
    ours = SpectrogramClassifier(backbone, mean, scale).eval()
    theirs = transformers.ASTForAudioClassification.from_pretrained(ast_folder).eval()
    extractor = transformers.ASTFeatureExtractor.from_pretrained(ast_folder)
    p = source_features(ast_folder, None)
    waves = [wave(1.2, s) for s in range(4)]
    windows = torch.cat(featurize_waves(waves, KaldiFbank(p), torch.device("cpu")))
    inputs = extractor([w.numpy() for w in waves], sampling_rate=RATE, return_tensors="pt")
    with torch.no_grad():
        expected = theirs(**inputs).logits
        got = ours(ours.normalise(windows))
    assert (got - expected).abs().max() < 1e-4


def test_a_new_head_for_other_labels_and_a_few_steps_lower_the_loss(ast_folder):
    labels = ["a", "b", "c", "d", "e"]
    backbone = pretrained_backbone(ast_folder, labels)
    source = transformers.ASTForAudioClassification.from_pretrained(ast_folder)
    assert backbone.fc.dense.out_features == 5
    body = dict(backbone.ast.audio_spectrogram_transformer.named_parameters())
    for name, param in source.audio_spectrogram_transformer.named_parameters():
        assert torch.equal(body[name], param), name  # the pretrained body, unchanged
    mean, scale = normalisation(ast_folder)
    model = SpectrogramClassifier(backbone, mean, scale)
    p = source_features(ast_folder, None)
    x = torch.cat(featurize_waves([wave(1.3, s) for s in range(10)], KaldiFbank(p), "cpu"))
    y = torch.arange(10) % 5
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(12):
        loss = torch.nn.functional.cross_entropy(model(model.normalise(x)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] * 0.7, losses


def sounds(root, per_label=6, seconds=2.0):
    """Three learnable "genres" as label folders, recorded at 22,050 Hz (resampled to AST's 16 kHz)."""
    rng = np.random.default_rng(0)
    for g in range(3):
        (root / GENRES[g]).mkdir(parents=True)
        for i in range(per_label):
            sf.write(root / GENRES[g] / f"{i}.wav", genre_clip(g, seconds, rng), 22050)
    return root


def test_train_predict_evaluate_and_export_with_ast(ast_folder, tmp_path, capsys):
    data = sounds(tmp_path / "sounds")
    run = tmp_path / "run"
    argv = ["train", "--model", "ast", "--model-source", ast_folder, "--data-dir", data]
    argv += ["--epochs", "4", "--batch-size", "8", "--device", "cpu", "--quiet", "--out", run]
    assert main([str(a) for a in argv]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["model"] == "ast" and summary["pretrained"] is True
    assert summary["model_source"] == str(ast_folder)
    assert summary["clips"] == {"train": 12, "val": 3, "test": 3}
    assert "baseline_clip_accuracy" in summary and 0 <= summary["test_clip_accuracy"] <= 1
    ckpt = run / "checkpoints" / "best.pt"
    state = torch.load(ckpt, weights_only=True)
    assert state["backbone"] == "ast" and state["feature_params"]["frontend"] == "kaldi_fbank"
    assert state["ast_config"]["hidden_size"] == 32

    clip = data / GENRES[1] / "0.wav"
    assert main(["predict", str(clip), "--checkpoint", str(ckpt), "--device", "cpu"]) == 0
    predicted = json.loads(capsys.readouterr().out)[0]
    assert predicted["top"][0]["label"] in GENRES[:3] and predicted["windows"] == 3

    out = tmp_path / "eval"
    argv = ["evaluate", "--checkpoint", ckpt, "--data-dir", data, "--out", out, "--quiet"]
    assert main([str(a) for a in argv]) == 0
    evaluated = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert evaluated["clip_accuracy"] == summary["test_clip_accuracy"]

    pytest.importorskip("onnxruntime")
    onnx = tmp_path / "onnx"
    assert main(["export", "--checkpoint", str(ckpt), "--out", str(onnx), "--quiet"]) == 0
    capsys.readouterr()
    sidecar = json.loads((onnx / "model.json").read_text())
    assert sidecar["preprocessing"]["frontend"] == "kaldi_fbank"
    assert main(["predict", str(clip), "--onnx", str(onnx / "model.onnx")]) == 0
    exported = json.loads(capsys.readouterr().out)[0]
    for a, b in zip(exported["top"], predicted["top"], strict=True):
        assert a["label"] == b["label"] and abs(a["probability"] - b["probability"]) < 1e-3


def test_ast_refusals(ast_folder, tmp_path, capsys, monkeypatch):
    data = sounds(tmp_path / "sounds", per_label=3)
    base = ["train", "--model", "ast", "--data-dir", data, "--out", tmp_path / "run"]
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert_clean_failure(main, base, capsys, "pass the folder that holds its config.json")
    assert_clean_failure(
        main, [*base, "--window-seconds", "3"], capsys, "AST's window is its input length"
    )
    assert_clean_failure(
        main, ["train", "--model-source", ast_folder, "--data-dir", data], capsys, "add --model ast"
    )
    hostile = tmp_path / "hostile"
    shutil.copytree(ast_folder, hostile)
    (hostile / "config.json").unlink()
    os.symlink("/dev/zero", hostile / "config.json")
    argv = [*base, "--model-source", hostile]
    assert_clean_failure(main, argv, capsys, "not a regular file")
    wide = tmp_path / "wide"
    shutil.copytree(ast_folder, wide)
    config = json.loads((wide / "config.json").read_text())
    (wide / "config.json").write_text(json.dumps({**config, "hidden_size": 4096}))
    with pytest.raises(UserError, match="the config does not describe these weights"):
        pretrained_backbone(wide, LABELS)
    assert not (tmp_path / "run").exists()
    assert isinstance(pretrained_backbone(ast_folder, LABELS), ASTBackbone)


@pytest.mark.parametrize(
    "change,words",
    [
        ({"max_length": 100000}, "max_length 100000 is not an integer in [16, 8192]"),
        ({"num_mel_bins": 0}, "num_mel_bins 0 is not an integer in [16, 512]"),
        ({"time_stride": "ten"}, "time_stride 'ten' is not an integer in [1, 64]"),
    ],
)
def test_a_source_config_is_checked_before_any_clip_is_featurized(
    ast_folder, tmp_path, capsys, change, words
):
    """A source whose config said ``max_length: 100000`` featurized every clip at that length
    (3.78 GB where the honest folder took 1.34 GB, growing with the clips) and left a 1.4 GB cache
    before it was refused. Every number of the source is checked first now: nothing is
    featurized, no cache and no run folder are left."""
    from audio_net import train as train_module

    data = sounds(tmp_path / "sounds", per_label=3)
    source = tmp_path / "source"
    shutil.copytree(ast_folder, source)
    config = json.loads((source / "config.json").read_text())
    (source / "config.json").write_text(json.dumps({**config, **change}))
    featurized = []
    original = train_module.load_features
    argv = ["train", "--model", "ast", "--model-source", source, "--data-dir", data]
    argv += ["--cache-dir", tmp_path / "cache", "--out", tmp_path / "run", "--epochs", "1"]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(
            train_module, "load_features", lambda *a, **k: featurized.append(1) or original(*a, **k)
        )
        assert_clean_failure(main, argv, capsys, words)
    assert not featurized
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").rglob("*.*"))
    assert not (tmp_path / "run").exists()
