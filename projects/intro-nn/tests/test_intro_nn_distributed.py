"""MNIST under torchrun with 2 CPU processes (gloo) against 1 process with the same global batch."""

import json
import os
import subprocess
import sys

import numpy as np
import torch

from intro_nn.idx import write_idx
from shared.checkpoint import load_checkpoint


def run(argv, nproc, cwd):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    launcher = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={nproc}",
    ]
    cmd = (launcher if nproc > 1 else [sys.executable]) + ["-m", "intro_nn.cli", *argv]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=env, timeout=1800)
    assert out.returncode == 0, out.stderr[-3000:]
    return out


def test_two_ranks_match_one(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "idx"
    folder.mkdir()
    write_idx(folder / "t10k-images-idx3-ubyte.gz", rng.integers(0, 256, (500, 28, 28)))
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.arange(500) % 10)
    # no BatchNorm: CPU DDP has no SyncBatchNorm, and per-rank batch statistics would differ
    base = ["train", "mnist", "--data-dir", str(folder), "--epochs", "2", "--batch-size", "32"]
    base += ["--no-sklearn", "--quiet", "--device", "cpu", "--dropout", "0", "--mlp-widths", "64"]
    base += ["--no-batch-norm"]
    run([*base, "--out", str(tmp_path / "one")], 1, tmp_path)
    out = run([*base, "--out", str(tmp_path / "two")], 2, tmp_path)
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert (
        summary["world_size"] == 2
        and out.stdout.count('"test_accuracy"') == 1
        and out.stdout.count("run folder") == 1
    )
    a = load_checkpoint(tmp_path / "one" / "checkpoints" / "last.pt", project="intro-nn")["model"]
    b = load_checkpoint(tmp_path / "two" / "checkpoints" / "last.pt", project="intro-nn")["model"]
    for k in a:
        if k.endswith("num_batches_tracked"):
            continue
        assert torch.allclose(a[k].float(), b[k].float(), atol=1e-3, rtol=1e-3), k
