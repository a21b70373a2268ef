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
    # each rank's one-line error first: the tail alone is the other ranks' lost connections
    errors = [line for line in out.stderr.splitlines() if ": error: " in line]
    assert out.returncode == 0, "\n".join(errors) + "\n\n" + out.stderr[-3000:]
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


def losses(folder) -> list[float]:
    rows = [line.split(",") for line in (folder / "metrics.csv").read_text().splitlines()]
    column = rows[0].index("train_loss")
    return [float(r[column]) for r in rows[1:] if r[column]]


def test_fsdp_two_ranks_match_one_process_and_resume_exactly(corpus, tmp_path):
    """--fsdp: FSDP2 over 2 gloo processes trains like one process (20 steps, every loss logged),
    and a run cut after its first checkpoint resumes to the same weights as one never cut."""
    args = [*ARGS, "--corpus-dir", str(corpus), "--max-steps", "20", "--log-every", "1"]
    args += ["--eval-every", "10"]
    one, two, cut = tmp_path / "one", tmp_path / "two", tmp_path / "cut"
    run([*args, "--out", str(one)], 1, tmp_path)
    out = run([*args, "--out", str(two), "--fsdp"], 2, tmp_path)
    assert '"world_size": 2' in out.stdout
    a, b = losses(one), losses(two)
    assert len(a) == len(b) == 20
    assert max(abs(x - y) for x, y in zip(a, b, strict=True)) < 1e-4, (a, b)  # seen: 7e-7
    whole = weights(two)
    assert whole["step"] == 20
    assert all(type(v) is torch.Tensor for v in whole["model"].values())  # gathered, not DTensors
    for k, v in weights(one)["model"].items():  # the checkpoint holds whole tensors
        assert v.shape == whole["model"][k].shape
        assert torch.allclose(v, whole["model"][k], atol=1e-5, rtol=1e-4), k  # seen: 1.2e-7

    run([*args, "--out", str(cut), "--fsdp", "--max-minutes", "0.000001"], 2, tmp_path)
    assert weights(cut)["step"] == 1  # cut after its first step, then resumed (2 ranks again)
    run([*args, "--out", str(cut), "--fsdp", "--resume", "latest"], 2, tmp_path)
    resumed = weights(cut)
    assert resumed["step"] == 20
    for k, v in whole["model"].items():
        assert torch.equal(v, resumed["model"][k]), k


def test_lora_under_two_ranks_trains_the_adapters_one_process_trains(
    llama_folder, corpus, tmp_path
):
    """LoRA under torchrun DDP: the frozen base stays out of the gradient all-reduce and the
    broadcast (non-persistent buffers), and the adapters come out as one process trains them."""
    args = ["train", "--init-from", str(llama_folder), "--lora-rank", "4", "--corpus-dir"]
    args += [str(corpus), "--batch-size", "8", "--grad-accum", "1", "--block-size", "64"]
    args += ["--max-steps", "4", "--eval-every", "4", "--eval-tokens", "2048", "--device", "cpu"]
    args += ["--quiet", "--seed", "5", "--lr", "1e-3"]
    one, two = tmp_path / "one", tmp_path / "two"
    run([*args, "--out", str(one)], 1, tmp_path)
    out = run([*args, "--out", str(two)], 2, tmp_path)
    assert '"world_size": 2' in out.stdout
    a, b = weights(one)["model"], weights(two)["model"]
    assert a.keys() == b.keys() and all(".lora_" in k for k in a)  # adapters alone
    moved = [k for k in a if ".lora_B." in k and a[k].abs().max() > 0]
    assert moved  # B starts at zero: these trained
    for k in a:
        assert torch.allclose(a[k], b[k], atol=2e-4, rtol=1e-3), k
