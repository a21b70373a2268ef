"""shared.device under torchrun on 2 CPU processes (gloo, 127.0.0.1): sharding, reductions,
freezing under DDP."""

import os

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from shared.device import all_reduce_mean, any_rank, shard
from testkit.served import free_port


def data():
    g = torch.Generator().manual_seed(0)
    return (
        torch.randn(8, 6, generator=g),
        torch.randn(8, 6, generator=g),
        torch.randn(6, 4, generator=g),
    )


def worker(rank: int, port: int, out: dict) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        x, y, _ = data()
        xs, ys = shard([x, y])
        out[rank] = (
            torch.equal(xs, x[rank::2]) and torch.equal(ys, y[rank::2]),
            all_reduce_mean({"v": float(rank)})["v"],
            any_rank(rank == 1, False),
        )
    finally:
        dist.destroy_process_group()


def test_sharding_and_reductions_across_ranks():
    with mp.Manager() as manager:
        out = manager.dict()
        mp.spawn(worker, args=(free_port(), out), nprocs=2, join=True)
        results = dict(out)
    for rank in (0, 1):
        strided, mean, anyflag = results[rank]
        assert strided and mean == 0.5 and anyflag == (True, False)


def freeze_worker(rank: int, port: int, out: dict) -> None:
    from torch import nn

    from shared.training import Cadence, Freeze, Trainer, run_loop

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        torch.manual_seed(0)
        body, head = nn.Linear(6, 8), nn.Linear(8, 2)
        model = nn.Sequential(body, nn.ReLU(), head)
        trainer = Trainer(
            model, torch.optim.AdamW(model.parameters(), lr=0.05), device=torch.device("cpu")
        )
        x, y, _ = data()
        labels = (y[:, 0] > 0).long()
        start = body.weight.detach().clone()
        seen = []

        def batches(step):
            seen.append(torch.equal(body.weight, start))
            return [(x, labels)]

        def loss_fn(m, batch):
            return F.cross_entropy(m(batch[0]), batch[1]), {}

        freeze = Freeze(body.parameters, until=3)
        run_loop(trainer, batches, loss_fn, Cadence(6), freeze=freeze, quiet=True)
        out[rank] = (seen, body.weight.detach().clone(), head.weight.detach().clone())
    finally:
        dist.destroy_process_group()


def test_freezing_then_unfreezing_under_ddp():
    with mp.Manager() as manager:
        out = manager.dict()
        mp.spawn(freeze_worker, args=(free_port(), out), nprocs=2, join=True)
        results = dict(out)
    seen, body0, head0 = results[0]
    # frozen for steps 0-2 (the body never moves), trained from step 3 on
    assert seen == [True, True, True, True, False, False]
    assert torch.equal(body0, results[1][1]) and torch.equal(head0, results[1][2])
