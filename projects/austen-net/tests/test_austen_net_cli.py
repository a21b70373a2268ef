import json

import pytest
import torch

from austen_net.cli import COMMANDS, main
from shared.checkpoint import load_checkpoint
from testkit import cli_help


def test_help_lists_the_subcommands_without_importing_torch(capsys):
    shown = cli_help(main, COMMANDS, "austen_net.cli", capsys)
    assert all(name in shown.text for name in COMMANDS)
    assert shown.module_status == 0 and "usage: austen-net" in shown.module_text
    assert shown.heavy_imports == {}  # no --help imports torch, matplotlib or gradio


def last_json(capsys):
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


TRAIN = [
    "train",
    "--preset",
    "tiny",
    "--vocab-size",
    "512",
    "--batch-size",
    "8",
    "--eval-every",
    "10",
    "--log-every",
    "5",
    "--device",
    "cpu",
    "--quiet",
    "--seed",
    "3",
]


def test_train_evaluate_generate_end_to_end(capsys, corpus, tmp_path):
    out = tmp_path / "run"
    assert main([*TRAIN, "--corpus-dir", str(corpus), "--max-steps", "40", "--out", str(out)]) == 0
    summary = last_json(capsys)
    # the grammar is learnable: validation bits per character fall between the first evaluation
    # (step 10) and the last, and end far below the ~3 bits a uniform guess over 512 tokens costs
    rows = [r.split(",") for r in (out / "metrics.csv").read_text().splitlines()]
    first_bpc = float(
        next(r for r in rows[1:] if r[rows[0].index("val_bpc")])[rows[0].index("val_bpc")]
    )
    assert summary["steps"] == 40 and summary["val_bpc"] < min(0.9 * first_bpc, 2.0), (
        first_bpc,
        summary,
    )
    assert (out / "figures" / "loss.png").read_bytes()[:4] == b"\x89PNG"
    assert {"step", "train_loss", "val_loss", "val_bpc"} <= set(
        (out / "metrics.csv").read_text().splitlines()[0].split(",")
    )
    ckpt = out / "checkpoints" / "best.pt"

    assert (
        main(
            [
                "evaluate",
                "--checkpoint",
                str(ckpt),
                "--corpus-dir",
                str(corpus),
                "--out",
                str(tmp_path / "e"),
                "--quiet",
            ]
        )
        == 0
    )
    ev = last_json(capsys)
    assert (
        abs(ev["bpc"] - summary["val_bpc"]) < 0.02
    )  # same split, same windows (best == last here)
    assert (
        main(
            [
                "evaluate",
                "--checkpoint",
                str(ckpt),
                "--text",
                str(corpus / "105-persuasion.txt"),
                "--out",
                str(tmp_path / "e2"),
            ]
        )
        == 0
    )
    scored = last_json(capsys)
    body = (corpus / "105-persuasion.txt").read_text(encoding="utf-8-sig")
    # Gutenberg's header and footer are stripped before scoring, CRLF counts as one character
    assert scored["chars"] < len(body.replace("\r\n", "\n")) - 150

    assert (
        main(
            [
                "generate",
                "--checkpoint",
                str(ckpt),
                "--prompt",
                "Anne ☃",  # a character never seen in training: byte fallback
                "--max-new-tokens",
                "30",
                "--seed",
                "1",
                "--num-samples",
                "2",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert text.count("Anne ☃") == 2 and "sample 2" in text
    assert (
        main(
            ["generate", "--checkpoint", str(ckpt), "--temperature", "0", "--max-new-tokens", "10"]
        )
        == 0
    )
    greedy = capsys.readouterr().out
    assert (
        main(
            [
                "generate",
                "--checkpoint",
                str(ckpt),
                "--temperature",
                "0",
                "--max-new-tokens",
                "10",
                "--no-cache",
            ]
        )
        == 0
    )
    assert capsys.readouterr().out == greedy


def test_resume_is_exact(capsys, corpus, tmp_path):
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert (
        main([*TRAIN, "--corpus-dir", str(corpus), "--max-steps", "20", "--out", str(straight)])
        == 0
    )
    capsys.readouterr()
    # the same run, cut after 10 steps ("--max-steps 10" with the 20-step schedule is not the
    # same thing, so stop it with a checkpoint instead: train 10, then resume to 20)
    assert (
        main(
            [
                *TRAIN,
                "--corpus-dir",
                str(corpus),
                "--max-steps",
                "20",
                "--out",
                str(split),
                "--max-minutes",
                "0.00001",
            ]
        )
        == 0
    )
    first = load_checkpoint(split / "checkpoints" / "last.pt", project="austen-net")
    assert first["step"] == 1
    assert (
        main(
            [
                *TRAIN,
                "--corpus-dir",
                str(corpus),
                "--max-steps",
                "20",
                "--out",
                str(split),
                "--resume",
                "latest",
            ]
        )
        == 0
    )
    a = load_checkpoint(straight / "checkpoints" / "last.pt", project="austen-net")["model"]
    b = load_checkpoint(split / "checkpoints" / "last.pt", project="austen-net")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_real_novels_train_and_score(capsys, real_corpus, tmp_path):
    out = tmp_path / "real"
    assert (
        main([*TRAIN, "--corpus-dir", str(real_corpus), "--max-steps", "10", "--out", str(out)])
        == 0
    )
    summary = last_json(capsys)
    assert summary["steps"] == 10 and 0 < summary["val_bpc"] < 9 and summary["val_chars"] > 1000


def test_generate_and_evaluate_with_bf16_and_int8_weights(capsys, corpus, tmp_path):
    """``--weights``: the same model scored and sampled with bf16 and int8 (the machine's kernel)
    weights; their bits per character stay within 0.05 of fp32's on the validation split."""
    out = tmp_path / "run"
    assert main([*TRAIN, "--corpus-dir", str(corpus), "--max-steps", "30", "--out", str(out)]) == 0
    capsys.readouterr()
    ckpt = str(out / "checkpoints" / "best.pt")
    bpc = {}
    for weights in ("fp32", "bf16", "int8"):
        argv = ["evaluate", "--checkpoint", ckpt, "--corpus-dir", str(corpus), "--quiet"]
        assert main([*argv, "--weights", weights, "--out", str(tmp_path / weights)]) == 0
        result = last_json(capsys)
        assert result["weights"] == weights
        bpc[weights] = result["bpc"]
        argv = ["generate", "--checkpoint", ckpt, "--weights", weights, "--max-new-tokens", "12"]
        assert main([*argv, "--prompt", "Anne", "--seed", "0"]) == 0
        assert capsys.readouterr().out.startswith("Anne")
    assert abs(bpc["bf16"] - bpc["fp32"]) < 0.05 and abs(bpc["int8"] - bpc["fp32"]) < 0.05, bpc


def test_bench_reports_generation_against_the_memory_roofline(capsys, tmp_path):
    argv = ["bench", "--preset", "tiny", "--batch-size", "4", "--train-steps", "1"]
    assert main([*argv, "--new-tokens", "16", "--device", "cpu", "--out", str(tmp_path)]) == 0
    b = last_json(capsys)
    assert b["memory_read_gb_per_s"] > 0 and b["weight_bytes"] > 0
    assert 0 < b["generate_roofline_fraction"] < 2  # tokens/s x bytes cannot far exceed the limit
    assert b["weight_bytes_int8"] < b["weight_bytes_bf16"] < b["weight_bytes"]
    assert b["cpu_vendor"] and b["cpu_capability"] and isinstance(b["cpu_flags"], list)
    assert b["cpu_blas"] in b["generate_kernels"]["fp32"]
    assert b["generate_int8_kernel"] in b["generate_kernels"]["int8"]
    assert b["generate_int8_speedup"] > 0 and b["generate_tokens_per_s_bf16"] > 0
    assert b["generate_tokens_per_s_bf16_compiled"] > 0
    # the compiled step by each kernel, side by side; the faster is the compiled figure
    by_kernel = [b[f"generate_tokens_per_s_compiled_{k}"] for k in ("blas", "reduction")]
    assert min(by_kernel) > 0 and b["generate_tokens_per_s_compiled"] == max(by_kernel)
    assert (
        "RowReduction" in b["generate_kernels"]["fp32_compiled"]
        or b["cpu_blas"] in (b["generate_kernels"]["fp32_compiled"])
    )
    # int8 by the machine's kernel; the weight-only one also runs compiled, fbgemm's does not
    compiled_int8 = b["generate_tokens_per_s_int8_compiled"]
    assert (compiled_int8 is not None) == (b["generate_int8_kernel"] == "weight-only"), b
    fastest = max(b["generate_tokens_per_s_int8"], compiled_int8 or 0)
    ratio = fastest / b["generate_tokens_per_s_fp32"]
    assert b["generate_int8_speedup"] == pytest.approx(ratio, abs=0.01)
    assert b["generate_batch_samples"] == 4  # four samples in one batch, beside one at a time
    per_sample = b["generate_tokens_per_s_batched"] / 4
    assert b["generate_tokens_per_s_batched_per_sample"] == pytest.approx(per_sample, abs=0.1)
    assert b["generate_batched_speedup"] > 0
