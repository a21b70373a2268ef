"""ONNX export of the MNIST networks: onnxruntime gives PyTorch's numbers (1e-4) for the MLP and
the CNN at any batch size, and the sidecar says how to make the input."""

import json

import numpy as np
import onnxruntime as ort
import pytest
import torch
from intro_nn_data import write_digit_idx

from intro_nn.cli import main as cli_main
from intro_nn.export import require_onnx
from intro_nn.inference import DigitModel, normalize
from shared.errors import UserError
from testkit import assert_clean_failure, check_export_folder_refusals, leftovers


def main(argv) -> int:
    return cli_main([str(a) for a in argv])


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    _, images = write_digit_idx(root / "idx", 400)
    return root, images


@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_onnx_equals_pytorch(capsys, digits, model):
    root, images = digits
    run = root / f"run-{model}"
    argv = ["train", "mnist", "--model", model, "--data-dir", root / "idx", "--epochs", "1"]
    assert main([*argv, "--no-sklearn", "--device", "cpu", "--quiet", "--out", run]) == 0
    out = root / f"onnx-{model}"
    assert main(["export", "mnist", "--run", run, "--out", out]) == 0
    made = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    sidecar = json.loads((out / "model.json").read_text())
    assert made["model"] == model and sidecar["labels"] == [str(d) for d in range(10)]
    assert sidecar["preprocessing"]["normalisation"]["mean"] == 0.1307

    net = DigitModel(run / "checkpoints" / "best.pt", torch.device("cpu")).model
    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    for batch in (1, 13):
        x = torch.from_numpy(images[:batch]).float().div(255).unsqueeze(1)
        with torch.no_grad():
            logits = net(normalize(x))
        got_logits, got_probs = session.run(None, {"image": x.numpy()})
        np.testing.assert_allclose(got_logits, logits.numpy(), atol=1e-4, rtol=1e-4)
        np.testing.assert_allclose(got_probs, logits.softmax(-1).numpy(), atol=1e-4)


def test_export_refusals(capsys, tmp_path):
    argv = ["export", "mnist", "--run", tmp_path, "--out", tmp_path / "x"]
    assert_clean_failure(cli_main, argv, capsys, "intro-nn train mnist", root=tmp_path)
    with pytest.raises(UserError, match="--extra export"):
        require_onnx("no_such_module_for_this_test")


def test_export_writes_only_a_new_folder_and_all_or_nothing(capsys, tmp_path, digits, monkeypatch):
    """A symlinked, used or file --out is refused before any work; a failed export leaves no
    folder (the files are staged beside it and renamed into place)."""
    import intro_nn.export as export

    root, _ = digits
    run = root / "run-mlp"
    if not run.exists():
        argv = ["train", "mnist", "--model", "mlp", "--data-dir", root / "idx", "--epochs", "1"]
        assert main([*argv, "--no-sklearn", "--device", "cpu", "--quiet", "--out", run]) == 0
    check_export_folder_refusals(cli_main, ["export", "mnist", "--run", run], tmp_path, capsys)

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(export, "export_onnx", full_disk)
    with pytest.raises(OSError, match="No space"):
        export.export_mnist(run / "checkpoints" / "best.pt", tmp_path / "new")
    assert not (tmp_path / "new").exists() and leftovers(tmp_path) == []
