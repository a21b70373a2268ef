"""torchrun with 2 CPU processes (gloo on 127.0.0.1) against 1 process: the same training."""

import os
import subprocess
import sys

import torch

from shared.checkpoint import load_checkpoint

ARGS = [
    "train",
    "--preset",
    "tiny",
    "--vocab-size",
    "512",
    "--batch-size",
    "8",
    "--max-steps",
    "6",
    "--eval-every",
    "3",
    "--log-every",
    "2",
    "--device",
    "cpu",
    "--quiet",
    "--seed",
    "5",
    "--lr",
    "3e-3",
]


def run(argv, nproc: int, cwd):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1"}
    if nproc == 1:
        cmd = [sys.executable, "-m", "austen_net.cli", *argv]
    else:
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc-per-node={nproc}",
            "-m",
            "austen_net.cli",
            *argv,
        ]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=env, timeout=1800)
    assert out.returncode == 0, out.stderr[-3000:]
    return out


def weights(folder):
    return load_checkpoint(folder / "checkpoints" / "last.pt", project="austen-net")


def test_two_ranks_match_one_and_resume_on_one(corpus, tmp_path):
    args = [*ARGS, "--corpus-dir", str(corpus)]
    one, two, mixed = tmp_path / "one", tmp_path / "two", tmp_path / "mixed"
    run([*args, "--out", str(one)], 1, tmp_path)
    out = run([*args, "--out", str(two)], 2, tmp_path)
    a, b = weights(one), weights(two)
    assert a["step"] == b["step"] == 6
    for k in a["model"]:
        assert torch.allclose(a["model"][k], b["model"][k], atol=2e-4, rtol=1e-3), k
    # rank 0 alone writes: one summary line, one metrics row per logged step, one run folder
    assert out.stdout.count('"val_bpc"') == 1 and '"world_size": 2' in out.stdout
    train_steps = [
        line.split(",")[0]
        for line in (two / "metrics.csv").read_text().splitlines()[1:]
        if line.split(",")[3]
    ]
    assert train_steps == ["2", "4", "6"]
    assert not (tmp_path / "runs").exists()

    # a checkpoint written by 2 ranks (stopped after its first step) resumes on 1 process
    run([*args, "--out", str(mixed), "--max-minutes", "0.000001"], 2, tmp_path)
    assert weights(mixed)["step"] == 1
    run([*args, "--out", str(mixed), "--resume", "latest"], 1, tmp_path)
    c = weights(mixed)
    assert c["step"] == 6
    for k in a["model"]:
        assert torch.allclose(a["model"][k], c["model"][k], atol=2e-4, rtol=1e-3), k
