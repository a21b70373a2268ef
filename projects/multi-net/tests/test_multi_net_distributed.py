"""multi-net under torchrun with 2 CPU processes: global negatives, one run folder, rank 0 writes."""

import json
import os
import subprocess
import sys

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from multi_net_data import plain_clips

from multi_net.model import gather_with_grad, info_nce
from shared.checkpoint import load_checkpoint
from shared.device import shard
from testkit.served import free_port


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


def pairs_and_weights():
    g = torch.Generator().manual_seed(0)
    return tuple(torch.randn(*shape, generator=g) for shape in ((8, 6), (8, 6), (6, 4)))


def contrastive_loss(x, y, w, gather=lambda t: t):
    a, b = (F.normalize(gather(t @ w), dim=1) for t in (x, y))
    return info_nce(a, b, torch.tensor(2.3))


def negatives_worker(rank: int, port: int, out: dict) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        x, y, w0 = pairs_and_weights()
        w = w0.clone().requires_grad_(True)
        xs, ys = shard([x, y])  # this rank's half of the batch
        loss = contrastive_loss(xs, ys, w, gather_with_grad)  # over the GLOBAL batch
        loss.backward()
        grad = w.grad.clone()
        dist.all_reduce(grad)
        out[rank] = (loss.item(), grad / 2)  # what DistributedDataParallel averages
    finally:
        dist.destroy_process_group()


def test_global_negatives_give_the_single_process_loss_and_gradient():
    x, y, w0 = pairs_and_weights()
    w = w0.clone().requires_grad_(True)
    loss = contrastive_loss(x, y, w)
    loss.backward()
    assert torch.equal(gather_with_grad(x), x)  # one process: nothing to gather
    with mp.Manager() as manager:
        out = manager.dict()
        mp.spawn(negatives_worker, args=(free_port(), out), nprocs=2, join=True)
        results = dict(out)
    for rank in (0, 1):
        dist_loss, grad = results[rank]
        assert abs(dist_loss - loss.item()) < 1e-5  # InfoNCE is invariant to the rank-strided order
        assert torch.allclose(grad, w.grad, atol=1e-6)
