"""multi-net under torchrun with 2 CPU processes: global negatives, one run folder, rank 0 writes."""

import json
import os
import subprocess
import sys

from multi_net_data import plain_clips

from shared.checkpoint import load_checkpoint


def test_two_ranks_train_and_test_once(tmp_path):
    videos, ann, pairs = plain_clips(tmp_path / "plain", n=24)
    argv = [
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node=2",
        "-m",
        "multi_net.cli",
        "train",
        "--videos",
        str(videos),
        "--annotations",
        str(ann),
        str(pairs),
        "--cache-dir",
        str(tmp_path / "cache"),
        "--num-frames",
        "2",
        "--clip-model",
        "mn-tiny",
        "--no-pretrained",
        "--epochs",
        "2",
        "--batch-size",
        "8",
        "--train-split",
        "all",
        "--device",
        "cpu",
        "--quiet",
        "--out",
        str(tmp_path / "run"),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, *argv], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=1800
    )
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["world_size"] == 2 and summary["test_videos"] == 3
    assert out.stdout.count("run folder") == 1 and out.stdout.count('"test_t2v_r1"') == 1
    state = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt", project="multi-net")
    assert state["epoch"] == 2
