"""ONNX export: onnxruntime gives the checkpoint's numbers (1e-4) for the small CNN and ResNet18,
and `predict --onnx` with nothing but the sidecar gives the checkpoint's top-3, which proves the
sidecar's preprocessing complete."""

import json

import numpy as np
import pytest
import torch
from test_audio_net_own_labels import LABELS, write_sounds

from audio_net.cli import main as cli_main
from audio_net.inference import OnnxClassifier, load_classifier, require_onnx
from shared.errors import UserError
from testkit import assert_clean_failure, check_export_folder_refusals, leftovers


def main(argv) -> int:
    return cli_main([str(a) for a in argv])


@pytest.fixture(scope="module")
def sounds(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    return root, write_sounds(root / "sounds", per_label=6)


def train(root, data, model: str):
    run = root / f"run-{model}"
    argv = ["train", "--data-dir", data, "--model", model, "--no-pretrained", "--epochs", "2"]
    argv += ["--window-seconds", "1", "--hop-seconds", "0.5", "--freeze-epochs", "0"]
    argv += ["--device", "cpu", "--quiet", "--cache-dir", root / "cache", "--out", run]
    if not (run / "checkpoints" / "best.pt").is_file():  # one run per folder: trained once
        assert main(argv) == 0
    return run / "checkpoints" / "best.pt"


@pytest.mark.parametrize("model", ["cnn", "resnet18"])
def test_onnx_equals_the_checkpoint(capsys, sounds, model):
    root, data = sounds
    ckpt = train(root, data, model)
    out = root / f"onnx-{model}"
    assert main(["export", "--checkpoint", ckpt, "--out", out]) == 0
    made = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert made["labels"] == 3 and (out / "model.onnx").is_file()
    sidecar = json.loads((out / "model.json").read_text())
    assert sidecar["labels"] == list(LABELS)
    assert sidecar["preprocessing"]["window_seconds"] == 1.0

    torch_model, params, _, _ = load_classifier(ckpt, torch.device("cpu"))
    exported = OnnxClassifier(out / "model.onnx")
    for batch in (1, 7):  # the batch axis is dynamic
        x = torch.randn(batch, params.n_mels, params.window_frames) * 20 - 40
        with torch.no_grad():
            expected = torch_model(torch_model.normalise(x)).softmax(-1)
        got = exported.probabilities(x)
        np.testing.assert_allclose(got.numpy(), expected.numpy(), atol=1e-4)

    files = [data / label / "001.flac" for label in LABELS]
    assert main(["predict", *files, "--checkpoint", ckpt]) == 0
    direct = json.loads(capsys.readouterr().out)
    assert main(["predict", *files, "--onnx", out / "model.onnx"]) == 0
    via_onnx = json.loads(capsys.readouterr().out)
    for a, b in zip(direct, via_onnx, strict=True):
        assert [t["label"] for t in a["top"]] == [t["label"] for t in b["top"]]
        for ta, tb in zip(a["top"], b["top"], strict=True):
            assert abs(ta["probability"] - tb["probability"]) <= 2e-4


def test_bad_exports_are_one_message(capsys, tmp_path, sounds):
    root, data = sounds
    lone = tmp_path / "lone.onnx"
    lone.write_bytes(b"not a model")
    (tmp_path / "model.json").write_text("{}")
    wav = data / LABELS[0] / "000.wav"
    cases = [
        (["predict", wav], "needs --checkpoint C"),
        (["predict", wav, "--onnx", tmp_path / "gone.onnx"], "no such file"),
        (["predict", wav, "--onnx", lone], "is not an audio-net ONNX sidecar"),
        (["export", "--checkpoint", tmp_path / "none.pt", "--out", tmp_path / "x"], "does not"),
    ]
    for argv, message in cases:
        assert_clean_failure(cli_main, argv, capsys, message, root=tmp_path)
    with pytest.raises(UserError, match="--extra export"):
        require_onnx("no_such_module_for_this_test")


def test_export_writes_only_a_new_folder_and_all_or_nothing(capsys, tmp_path, sounds, monkeypatch):
    """A symlinked, used or file --out is refused before any work; a failed export leaves no
    folder (the files are staged beside it and renamed into place)."""
    import audio_net.export as export

    root, data = sounds
    ckpt = train(root, data, "cnn")
    check_export_folder_refusals(cli_main, ["export", "--checkpoint", ckpt], tmp_path, capsys)

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(export, "export_onnx", full_disk)
    with pytest.raises(OSError, match="No space"):
        export.export_classifier(ckpt, tmp_path / "new")
    assert not (tmp_path / "new").exists() and leftovers(tmp_path) == []


def test_a_sidecar_that_lies_is_one_message_naming_the_field(capsys, tmp_path, sounds):
    """Labels fewer or more than the model's outputs, a mel count or a window length the graph
    does not take: refused when the model is loaded, before any audio is read."""
    import shutil

    root, data = sounds
    ckpt = train(root, data, "cnn")
    good = tmp_path / "good"
    assert main(["export", "--checkpoint", ckpt, "--out", good]) == 0
    sidecar = json.loads((good / "model.json").read_text())
    pre = sidecar["preprocessing"]
    lies = {
        "fewer": ({"labels": sidecar["labels"][:2]}, "names 2 labels, but the model has 3"),
        "more": ({"labels": [*sidecar["labels"], "extra"]}, "names 4 labels, but the model has 3"),
        "mels": ({"preprocessing": {**pre, "n_mels": 64}}, "n_mels 64, but the model takes"),
        "window": (
            {"preprocessing": {**pre, "window_seconds": 500.0}},
            "window_frames 21534, but the model takes 44",
        ),
    }
    wav = data / LABELS[0] / "000.wav"
    for name, (change, message) in lies.items():
        folder = tmp_path / name
        shutil.copytree(good, folder)
        (folder / "model.json").write_text(json.dumps({**sidecar, **change}))
        argv = ["predict", wav, "--onnx", folder / "model.onnx"]
        assert_clean_failure(cli_main, argv, capsys, message, root=tmp_path)
