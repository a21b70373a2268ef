"""audio-net under torchrun with 2 CPU processes, backbone freezing included (DDP rewrapped)."""

import json
import os
import subprocess
import sys

from audio_net_data import make_learnable_gtzan

from shared.checkpoint import load_checkpoint


def test_two_ranks_train_with_a_frozen_then_unfrozen_backbone(tmp_path):
    root = make_learnable_gtzan(tmp_path / "g", per_genre=3, seconds=2.0)
    argv = [
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node=2",
        "-m",
        "audio_net.cli",
        "train",
        "--data-dir",
        str(root),
        "--model",
        "cnn",
        "--no-pretrained",
        "--epochs",
        "3",
        "--freeze-epochs",
        "1",
        "--batch-size",
        "8",
        "--device",
        "cpu",
        "--quiet",
        "--cache-dir",
        str(tmp_path / "cache"),
        "--out",
        str(tmp_path / "run"),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, *argv], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=1800
    )
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["world_size"] == 2 and summary["epochs"] == 3
    assert out.stdout.count("run folder") == 1
    state = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt", project="audio-net")
    assert state["epoch"] == 3
