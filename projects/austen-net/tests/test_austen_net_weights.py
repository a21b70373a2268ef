"""``--weights auto``: the fastest weights within the bits/char bound, measured once, cached."""

import re

import pytest
import torch

from austen_net import weights
from austen_net.cli import main
from austen_net.demo import Writer

TRAIN = ["train", "--preset", "tiny", "--tokenizer", "char", "--max-steps", "20", "--quiet"]


def figures(fp32, bf16, int8):
    return {"fp32": fp32, "bf16": bf16, "int8": int8}


def test_the_fastest_within_the_bound_wins():
    m = figures(
        {"bpc": 2.0, "tokens_per_s": 100.0},
        {"bpc": 2.004, "tokens_per_s": 250.0},
        {"bpc": 2.02, "tokens_per_s": 900.0},  # fastest, but 0.02 bits/char worse
    )
    chosen, reason = weights.pick(m)
    assert chosen == "bf16" and "int8 900 tok/s +0.0200 bits/char" in reason
    m["int8"]["bpc"] = 2.001
    assert weights.pick(m)[0] == "int8"
    m["fp32"]["tokens_per_s"] = 1000.0  # where fp32's kernel streams fastest, fp32 stays
    assert weights.pick(m)[0] == "fp32"


@pytest.fixture()
def run(corpus, tmp_path):
    out = tmp_path / "run"
    assert main([*TRAIN, "--corpus-dir", str(corpus), "--out", str(out)]) == 0
    return out / "checkpoints" / "best.pt"


def test_generate_and_demo_start_with_the_choice_measured_once(run, monkeypatch, capsys):
    measured = []

    def fake(model, tok, texts, device):  # bf16 made the fastest within the bound
        kind = {torch.float32: "fp32", torch.bfloat16: "bf16"}.get(model.head.weight.dtype, "int8")
        measured.append(kind)
        assert texts and all(isinstance(t, str) for t in texts)  # the run's validation split
        speed = {"fp32": 100.0, "bf16": 300.0, "int8": 500.0}[kind]
        return {"bpc": {"fp32": 3.0, "bf16": 3.001, "int8": 3.1}[kind], "tokens_per_s": speed}

    monkeypatch.setattr(weights, "measure_candidate", fake)
    capsys.readouterr()
    argv = ["generate", "--checkpoint", str(run), "--max-new-tokens", "8", "--seed", "1"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert sorted(measured) == ["bf16", "fp32", "int8"]
    assert "weights: bf16 (fastest within +0.005 bits/char of fp32" in err
    assert "tokens/s (bf16 weights" in err
    assert main(argv) == 0  # the second time from the cache: nothing measured again
    assert len(measured) == 3 and "measured before" in capsys.readouterr().err
    assert Writer(run, torch.device("cpu"), "auto").model.head.weight.dtype == torch.bfloat16
    assert main([*argv, "--weights", "fp32"]) == 0  # a forced choice is kept
    assert "tokens/s (fp32 weights" in capsys.readouterr().err


def test_auto_compiles_with_the_kernel_it_measured_fastest(run, monkeypatch, capsys):
    """Each candidate is timed by every path (eager, compiled with the library's products,
    compiled with the reductions); the choice keeps its fastest kernel and generate compiles
    with it. Forced here: bf16 fastest by its reduction kernel."""

    def fake(model, tok, texts, device):
        kind = {torch.float32: "fp32", torch.bfloat16: "bf16"}.get(model.head.weight.dtype, "int8")
        kernel = {"fp32": "blas", "bf16": "reduction", "int8": "blas"}[kind]
        speed = {"fp32": 100.0, "bf16": 300.0, "int8": 500.0}[kind]
        return {"bpc": {"fp32": 3.0, "bf16": 3.001, "int8": 3.1}[kind], "tokens_per_s": speed,
                "kernel": kernel}  # fmt: skip

    monkeypatch.setattr(weights, "measure_candidate", fake)
    capsys.readouterr()
    argv = ["generate", "--checkpoint", str(run), "--max-new-tokens", "8", "--seed", "1"]
    assert main([*argv, "--compile", "on"]) == 0
    err = capsys.readouterr().err
    assert "weights: bf16" in err and "bf16 300 tok/s (reduction) +0.0010 bits/char" in err
    assert "compiled the decode step in" in err and "(reduction products)" in err
    cpu = torch.device("cpu")
    assert weights.chosen_kernel(run, cpu, "bf16") == "reduction"
    assert weights.chosen_kernel(run, cpu, "fp32") == "blas"


def test_real_measurement_names_every_candidate(run, capsys):
    chosen = weights.choose_weights(run, torch.device("cpu"))
    err = capsys.readouterr().err
    assert chosen in ("fp32", "bf16", "int8")
    # every candidate timed by each path: eager and both compiled kernels (int8 by fbgemm: eager)
    entry = weights.cached_choice(weights.cache_file(run, torch.device("cpu")), torch.device("cpu"))
    assert set(entry["fp32"]["paths"]) == {"eager", "blas", "reduction"}
    assert entry[chosen]["kernel"] == weights.chosen_kernel(run, torch.device("cpu"), chosen)
    assert all(f"{k} " in err.split("fastest within", 1)[1] for k in ("fp32", "bf16", "int8"))
    # before the wait for the others, how long it will be: what fp32 took, twice
    took = re.search(r"fp32 measured in (\d+) s; bf16, int8 next, about (\d+) s more", err)
    assert took is not None, err
    assert abs(int(took[2]) - 2 * int(took[1])) <= 1


def test_without_the_validation_text_fp32_is_kept(tmp_path, capsys):
    text = tmp_path / "mine.txt"
    text.write_text("It was a bright cold day in April, and the clocks were striking. " * 400)
    out = tmp_path / "own"
    assert main([*TRAIN, "--text", str(text), "--out", str(out)]) == 0
    text.unlink()
    capsys.readouterr()
    assert weights.choose_weights(out / "checkpoints" / "best.pt", torch.device("cpu")) == "fp32"
    assert "validation text is not here" in capsys.readouterr().err


def test_a_damaged_cache_entry_is_measured_again(run, monkeypatch, capsys, tmp_path):
    """The cache entry replaced by a symbolic link to a 3 GB sparse file was read whole (3.9 GB,
    then a MemoryError traceback); nested 100,000 deep it was a RecursionError; ``"weights":
    "evil"`` ended in a refusal of a flag nobody typed. Each is measured again now, and the new
    measurement replaces the entry."""
    measured = []

    def fake(model, tok, texts, device):
        measured.append(1)
        return {"bpc": 3.0, "tokens_per_s": 100.0}

    monkeypatch.setattr(weights, "measure_candidate", fake)
    entry = weights.cache_file(run, torch.device("cpu"))
    entry.parent.mkdir(parents=True, exist_ok=True)
    huge = tmp_path / "huge"
    with open(huge, "wb") as fh:
        fh.truncate(3 << 30)  # sparse: no disk is spent
    damages = {
        "symlink to a 3 GB file": lambda: entry.symlink_to(huge),
        "nested 100,000 deep": lambda: entry.write_text("[" * 100_000 + "]" * 100_000),
        "a choice that is no candidate": lambda: entry.write_text(
            '{"weights": "evil", "reason": "x"}'
        ),
        "a list for a choice": lambda: entry.write_text('{"weights": ["int8"], "reason": "x"}'),
        "fp16, not a candidate": lambda: entry.write_text('{"weights": "fp16", "reason": "x"}'),
        "a folder": lambda: entry.mkdir(),
    }
    for what, damage in damages.items():
        if entry.is_dir() and not entry.is_symlink():
            entry.rmdir()
        entry.unlink(missing_ok=True)
        damage()
        before = len(measured)
        assert weights.choose_weights(run, torch.device("cpu")) in ("fp32", "bf16", "int8"), what
        assert len(measured) > before, what
        err = capsys.readouterr().err
        assert "Traceback" not in err
        if what == "a folder":  # nothing can replace it: the choice stands, and says so
            assert "could not cache the choice" in err
        else:
            assert weights.cached_choice(entry, torch.device("cpu")) is not None, what
