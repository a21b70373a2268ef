"""CLAP's audio tower as the pretrained audio encoder, tested offline on a tiny random CLAP that
transformers builds from a config and saves as a folder (the real checkpoint's loading code is the
same code): our log-mel equals ``ClapFeatureExtractor`` (<= 1e-4), our embedding equals
``ClapModel``'s audio projection (<= 1e-4), and ``train --audio-encoder clap`` runs end to end,
its checkpoint reloaded by ``evaluate``, ``index`` and ``recommend``."""

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from multi_net_data import plain_clips

from multi_net.clap import ClapLogMel, load_clap_audio
from multi_net.cli import main
from shared.checkpoint import load_checkpoint
from shared.errors import UserError
from testkit import assert_clean_failure, random_pretrained

transformers = pytest.importorskip("transformers")

PROJECT = Path(__file__).resolve().parents[1]
TINY = ["--clip-model", "mn-tiny", "--no-pretrained", "--device", "cpu", "--quiet"]


@pytest.fixture(scope="module")
def clap_folder(tmp_path_factory):
    """A full CLAP (audio and text towers) with a 4-stage Swin audio tower 128 wide, its text tower
    and projection 32 wide, every weight perturbed, saved with an unfused feature extractor: built
    by the command NOTES.md gives users (tools/random_pretrained.py clap --tiny)."""
    out = tmp_path_factory.mktemp("clap") / "clap-random"
    return random_pretrained(PROJECT, "clap", out)


def waves(n: int, seconds: float = 10.0, rate: int = 48000) -> torch.Tensor:
    g = torch.Generator().manual_seed(n)
    t = torch.arange(int(seconds * rate)) / rate
    return torch.stack(
        [0.2 * torch.sin(2 * torch.pi * (200 + 150 * i) * t) for i in range(n)]
    ) + 0.02 * torch.randn(n, len(t), generator=g)


def test_log_mel_equals_the_feature_extractor(clap_folder):
    extractor = transformers.ClapFeatureExtractor.from_pretrained(clap_folder)
    ours = ClapLogMel.from_folder(clap_folder)
    w = waves(2)
    got = ours(w)
    theirs = extractor([x.numpy() for x in w], sampling_rate=48000, return_tensors="pt")
    assert got.shape == theirs.input_features.shape == (2, 1, 1001, 64)
    assert (got - theirs.input_features).abs().max() < 1e-4
    short = ours(w[:, :48000])  # 1 s: zero-padded to CLAP's 10 s, as a decoded track is
    assert short.shape == got.shape


def test_embeddings_equal_clap(clap_folder):
    encoder, identity = load_clap_audio(str(clap_folder))
    assert encoder.dim == 32 and identity.startswith("clap:")
    model = transformers.ClapModel.from_pretrained(clap_folder).eval()
    extractor = transformers.ClapFeatureExtractor.from_pretrained(clap_folder)
    w = waves(3)
    inputs = extractor([x.numpy() for x in w], sampling_rate=48000, return_tensors="pt")
    with torch.no_grad():
        pooled = model.audio_model(input_features=inputs.input_features).pooler_output
        expected = torch.nn.functional.normalize(model.audio_projection(pooled), dim=-1)
    got = encoder(w)
    assert (got - expected).abs().max() < 1e-4


def test_train_evaluate_index_and_recommend_with_clap(clap_folder, tmp_path, capsys):
    videos, ann, pairs = plain_clips(tmp_path / "plain", n=12)
    common = ["--videos", str(videos), "--annotations", str(ann), str(pairs)]
    common += ["--cache-dir", str(tmp_path / "cache"), "--num-frames", "2"]
    run = tmp_path / "run"
    argv = ["train", *common, *TINY, "--audio-encoder", "clap", "--audio-source", str(clap_folder)]
    argv += ["--epochs", "3", "--batch-size", "4", "--out", str(run)]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert "test_t2v_r1" in summary
    state = load_checkpoint(run / "checkpoints" / "last.pt", project="multi-net")
    fusion = state["fusion_config"]
    assert (fusion["audio_encoder"], fusion["audio_dim"], state["decode"]["audio_rate"]) == (
        "clap",
        32,
        48000,
    )
    assert "audio.proj.weight" in state["model"]  # the projection trains; the tower is not saved
    assert not any(k.startswith("audio.tower") for k in state["model"])
    ckpt = str(run / "checkpoints" / "last.pt")
    out = ["--out", str(tmp_path / "ev"), "--quiet"]
    assert main(["evaluate", "--checkpoint", ckpt, *common, *out]) == 0
    evaluated = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert evaluated["t2v_r1"] == summary["test_t2v_r1"]
    index = tmp_path / "index.pt"
    argv = ["index", "--checkpoint", ckpt, "--videos", str(videos), "--out", str(index)]
    assert main([*argv, "--cache-dir", str(tmp_path / "cache2"), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["recommend", "--index", str(index), "--text", "a red square moves"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["results"]


def test_clap_refusals(clap_folder, tmp_path, capsys, monkeypatch):
    videos, ann, pairs = plain_clips(tmp_path / "plain", n=6, broken=False)
    base = ["train", "--videos", videos, "--annotations", ann, *TINY, "--out", tmp_path / "run"]
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert_clean_failure(
        main, [*base, "--audio-encoder", "clap"], capsys, "pass the folder that holds its"
    )
    assert_clean_failure(
        main, [*base, "--audio-source", clap_folder], capsys, "add --audio-encoder clap"
    )
    hostile = tmp_path / "hostile"
    shutil.copytree(clap_folder, hostile)
    (hostile / "config.json").unlink()
    os.mkfifo(hostile / "config.json")
    argv = [*base, "--audio-encoder", "clap", "--audio-source", hostile]
    assert_clean_failure(main, argv, capsys, "not a regular file")
    wide = tmp_path / "wide"
    shutil.copytree(clap_folder, wide)
    config = json.loads((wide / "config.json").read_text())
    config["audio_config"]["patch_embeds_hidden_size"] = 512  # Swin stages 512 .. 4096 wide
    (wide / "config.json").write_text(json.dumps(config))
    with pytest.raises(UserError, match="the config does not describe these weights"):
        load_clap_audio(str(wide))
    assert not (tmp_path / "run").exists()
    assert np.isfinite(load_clap_audio(str(clap_folder))[0](waves(1)).numpy()).all()
