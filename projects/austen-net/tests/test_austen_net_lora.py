"""LoRA: adapters on a frozen model, exactly peft's on transformers' Llama of the same weights
(logits to 1e-4 both ways), merged into the base weights without changing the output, and the
optimizer sees only the adapters."""

import json
from pathlib import Path

import pytest
import torch

from austen_net.lora import (
    LoRASettings,
    adapters,
    apply_lora,
    load_peft_state,
    merge_lora,
    peft_config,
    peft_state,
)
from austen_net.model import GPT
from austen_net.presets import LORA_LR
from austen_net.pretrained import llama_config, llama_weights
from testkit import python_blocks

transformers = pytest.importorskip("transformers")
peft = pytest.importorskip("peft")
safetensors_torch = pytest.importorskip("safetensors.torch")


def tiny_llama(seed: int = 0):
    torch.manual_seed(seed)
    config = transformers.LlamaConfig(
        vocab_size=120,
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        rope_theta=10000.0,
        tie_word_embeddings=False,
    )
    return transformers.LlamaForCausalLM(config).eval()


def ours_from(hf, tmp_path) -> GPT:
    cfg = llama_config(hf.config.to_dict(), tmp_path, 64)
    model = GPT(cfg)
    model.load_state_dict(llama_weights(hf.state_dict(), cfg))
    return model.eval()


def randomise(model) -> None:
    """Non-zero B (it starts at zero), so the adapters change the output."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)


@pytest.mark.parametrize("targets", [("q_proj", "v_proj"), tuple(LoRASettings().targets)])
def test_our_adapters_load_in_peft_with_the_same_logits(tmp_path, targets):
    hf = tiny_llama()
    ours = ours_from(hf, tmp_path)
    settings = LoRASettings(rank=4, alpha=8.0, targets=targets)
    apply_lora(ours, settings)
    randomise(ours)
    folder = tmp_path / "adapter"
    folder.mkdir()
    (folder / "adapter_config.json").write_text(json.dumps(peft_config(settings, None)))
    safetensors_torch.save_file(peft_state(ours), folder / "adapter_model.safetensors")

    adapted = peft.PeftModel.from_pretrained(hf, folder).eval()
    ids = torch.randint(0, 120, (2, 17), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        theirs, mine = adapted(ids).logits, ours(ids)[0]
        plain = tiny_llama()(ids).logits
    assert (mine - plain).abs().max() > 1e-3  # the adapters do change the model
    assert (mine - theirs).abs().max() <= 1e-4


def test_peft_adapters_load_into_ours(tmp_path):
    hf = tiny_llama()
    config = peft.LoraConfig(r=4, lora_alpha=8, target_modules=list(LoRASettings().targets))
    adapted = peft.get_peft_model(hf, config).eval()
    randomise(adapted)
    state = {k.replace(".default", ""): v for k, v in adapted.state_dict().items() if "lora_" in k}
    ours = ours_from(tiny_llama(), tmp_path)
    apply_lora(ours, LoRASettings(rank=4, alpha=8.0))
    load_peft_state(ours, state)
    ids = torch.randint(0, 120, (1, 9), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert (ours(ids)[0] - adapted(ids).logits).abs().max() <= 1e-4


def test_merged_model_gives_the_adapted_output_and_only_adapters_train(tmp_path):
    ours = ours_from(tiny_llama(), tmp_path)
    apply_lora(ours, LoRASettings(rank=4, alpha=8.0))
    randomise(ours)
    trainable = [n for n, p in ours.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert set(adapters(ours)) == {n for n in trainable}
    small = sum(v.numel() for v in adapters(ours).values())
    assert small < 0.1 * sum(p.numel() for p in ours.parameters())
    ids = torch.randint(0, 120, (2, 11), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        adapted = ours(ids)[0]
        merged = merge_lora(ours)(ids)[0]
    assert (adapted - merged).abs().max() <= 1e-4
    assert not adapters(ours)


def test_merging_sums_in_fp32_and_stores_the_dtype_asked(tmp_path):
    """A bf16 base (what a Llama is stored in) merged into bf16 weights: W + BA rounded once, as
    the fp32 merge cast to bf16 gives; into fp32 weights: W + BA exactly."""
    bases = {}
    for dtype in (torch.bfloat16, torch.float32):
        ours = ours_from(tiny_llama(), tmp_path)
        apply_lora(ours, LoRASettings(rank=4, alpha=8.0), torch.bfloat16)
        randomise(ours)
        layer = ours.blocks[0].attn.qkv
        w = layer.base.weight.float()
        with torch.no_grad():
            for name, (start, end) in layer.parts.items():
                w[start:end] += layer.lora_B[name] @ layer.lora_A[name] * layer.scale
            merge_lora(ours, dtype)
        got = ours.blocks[0].attn.qkv.weight
        assert got.dtype == dtype and torch.equal(got, w.to(dtype))
        bases[dtype] = got
    assert torch.equal(bases[torch.float32].bfloat16(), bases[torch.bfloat16])


def test_adapters_start_as_the_pretrained_model_and_refuse_unknown_targets(tmp_path):
    hf = tiny_llama()
    ours = ours_from(hf, tmp_path)
    ids = torch.randint(0, 120, (1, 8), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        before = ours(ids)[0]
        apply_lora(ours, LoRASettings(rank=2, alpha=4.0))
        assert torch.equal(ours(ids)[0], before)  # B starts at zero
    with pytest.raises(ValueError, match="LoRA targets"):
        apply_lora(ours_from(hf, tmp_path), LoRASettings(targets=("qkv",)))


def lora_argv(llama_folder, text, *extra) -> list[str]:
    return [
        "train",
        "--init-from",
        str(llama_folder),
        "--text",
        str(text),
        "--lora-rank",
        "4",
        "--lora-alpha",
        "8",
        "--block-size",
        "64",
        "--batch-size",
        "4",
        "--lr",
        "1e-2",
        "--warmup-steps",
        "2",
        "--max-steps",
        "12",
        "--eval-every",
        "6",
        "--eval-tokens",
        "0",
        "--quiet",
        *extra,
    ]


def test_lora_run_trains_adapters_alone_resumes_exactly_and_exports_both_ways(
    llama_folder, tmp_path, capsys
):
    from austen_net_hf import corpus_text

    from austen_net.cli import main
    from austen_net.inference import load_model
    from shared.checkpoint import load_checkpoint

    text = tmp_path / "own.txt"
    text.write_text(corpus_text())
    argv = lora_argv(llama_folder, text)
    straight = tmp_path / "straight"
    assert main([*argv, "--out", str(straight)]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["steps"] == 12 and 0 < summary["trainable_params_m"] < summary["params_m"]
    assert json.loads((straight / "config.json").read_text())["lr"] == 1e-2  # typed: it wins
    best = straight / "checkpoints" / "best.pt"
    state = load_checkpoint(best, project="austen-net")
    assert state["model"] and all("lora_" in k for k in state["model"])  # adapters alone
    assert state["lora"]["base"] == str(llama_folder)
    base_bytes = sum(f.stat().st_size for f in llama_folder.glob("*.safetensors"))
    assert best.stat().st_size < base_bytes

    # cut after its first step, resumed: the same adapters as the straight run
    cut = tmp_path / "cut"
    assert main([*argv, "--out", str(cut), "--max-minutes", "0.00001"]) == 0
    assert main([*argv, "--out", str(cut), "--resume", "latest"]) == 0
    a = load_checkpoint(straight / "checkpoints" / "last.pt", project="austen-net")["model"]
    b = load_checkpoint(cut / "checkpoints" / "last.pt", project="austen-net")["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    capsys.readouterr()

    # generate takes the checkpoint: the base from its source, the adapters merged
    argv = ["generate", "--checkpoint", str(best), "--max-new-tokens", "8", "--seed", "0"]
    assert main([*argv, "--prompt", "Sir Walter"]) == 0
    assert capsys.readouterr().out.startswith("Sir Walter")

    ours, _, _ = load_model(best, torch.device("cpu"))
    ids = torch.randint(0, ours.cfg.vocab_size, (2, 30), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        mine = ours(ids)[0]
        plain = transformers.AutoModelForCausalLM.from_pretrained(llama_folder).eval()(ids).logits
    assert (mine - plain).abs().max() > 1e-4  # training moved the adapters

    adapter = tmp_path / "adapter"
    assert (
        main(["export", "--checkpoint", str(best), "--format", "peft", "--out", str(adapter)]) == 0
    )
    written = json.loads(capsys.readouterr().out)
    assert written["format"] == "peft" and written["rank"] == 4
    # NOTES.md's snippet, as a reader runs it, with this test's base and adapter
    notes = (Path(__file__).parents[1] / "NOTES.md").read_text()
    snippet = python_blocks(notes.split("### Loading the adapter in peft", 1)[1])[0]
    snippet = snippet.replace("TinyLlama/TinyLlama_v1.1", str(llama_folder))
    scope = {}
    exec(snippet.replace("runs/tinyllama-adapter", str(adapter)), scope)
    assert len(capsys.readouterr().out) > 0
    with torch.no_grad():
        theirs = scope["model"](ids).logits
        folded = scope["merged"](ids).logits
    assert (mine - theirs).abs().max() <= 1e-4 and (mine - folded).abs().max() <= 1e-4

    merged = tmp_path / "merged"
    assert main(["export", "--checkpoint", str(best), "--out", str(merged)]) == 0
    with torch.no_grad():
        hf = transformers.AutoModelForCausalLM.from_pretrained(merged).eval()(ids).logits
    assert (mine - hf).abs().max() <= 1e-4


def test_lora_flags_are_checked_at_the_edge(llama_folder, tmp_path, capsys):
    from austen_net.cli import main

    text = tmp_path / "own.txt"
    text.write_text("Some text. " * 200)
    base = ["train", "--text", str(text), "--out", str(tmp_path / "r"), "--quiet"]
    assert main([*base, "--lora-rank", "4"]) == 2
    assert "add --init-from" in capsys.readouterr().err
    assert (
        main([*base, "--init-from", str(llama_folder), "--lora-rank", "4", "--lora-targets", "qkv"])
        == 2
    )
    assert "--lora-targets qkv" in capsys.readouterr().err


def test_bench_finetune_reports_the_contract_keys(tmp_path, capsys):
    from austen_net.cli import main

    argv = ["bench", "--finetune", "--shape", "tiny", "--context", "16", "--device", "cpu"]
    argv += ["--grad-checkpoint"]
    assert main([*argv, "--out", str(tmp_path / "bench")]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for mode in ("full", "lora", "peft"):
        assert result[f"{mode}_peak_gb"] > 0 and result[f"{mode}_tokens_per_s"] > 0, result
    assert result["finetune_shape"] == "tiny" and result["lora_rank"] == 8
    assert result["grad_checkpoint"] is True


def test_grad_checkpoint_gives_the_same_loss_and_gradients():
    from austen_net.model import GPTConfig

    torch.manual_seed(0)
    model = GPT(
        GPTConfig(vocab_size=50, block_size=16, n_layer=2, n_head=2, n_embd=32, dropout=0.0)
    ).train()
    ids = torch.randint(0, 50, (2, 16))
    grads = []
    for checkpointed in (False, True):
        model.zero_grad()
        model.grad_checkpoint = checkpointed
        loss = torch.nn.functional.cross_entropy(model(ids)[0].flatten(0, 1), ids.flatten())
        loss.backward()
        grads.append((loss.item(), [p.grad.clone() for p in model.parameters()]))
    (a, ga), (b, gb) = grads
    assert a == pytest.approx(b, abs=1e-6)
    assert all(torch.allclose(x, y, atol=1e-6) for x, y in zip(ga, gb, strict=True))


def test_import_of_a_peft_adapter_folder_gives_a_lora_checkpoint(llama_folder, tmp_path, capsys):
    from austen_net.cli import main
    from austen_net.inference import load_model
    from shared.checkpoint import load_checkpoint

    base = transformers.AutoModelForCausalLM.from_pretrained(llama_folder).eval()
    config = peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"])
    adapted = peft.get_peft_model(base, config).eval()
    randomise(adapted)
    folder = tmp_path / "adapter"
    adapted.save_pretrained(folder)
    out = tmp_path / "imported.pt"
    assert main(["import", str(folder), "--out", str(out), "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["rank"] == 4
    state = load_checkpoint(out, project="austen-net")
    assert all("lora_" in k for k in state["model"])
    ours, _, _ = load_model(out, torch.device("cpu"))
    ids = torch.randint(0, ours.cfg.vocab_size, (1, 20), generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        assert (ours(ids)[0] - adapted(ids).logits).abs().max() <= 1e-4

    (folder / "adapter_config.json").write_text(
        json.dumps({**json.loads((folder / "adapter_config.json").read_text()), "use_dora": True})
    )
    assert main(["import", str(folder), "--out", str(tmp_path / "dora.pt"), "--quiet"]) == 2
    assert "use_dora" in capsys.readouterr().err


def test_hostile_adapter_folders_are_one_line_each(llama_folder, tmp_path, capsys):
    """peft adapter folders damaged or crafted: a safetensors header claiming 10^15 bytes or a
    link to /dev/zero (a SafetensorError traceback before), lora_alpha NaN or negative and
    all-NaN adapters (imported with exit 0, a NaN model that generate crashed on and export
    wrote out), another adapter type (imported as LoRA), r of 0 or 10^9 ("must be numbers").
    Each is one line naming the problem, exit 2, nothing written."""
    import shutil
    import struct

    from austen_net.cli import main
    from testkit import assert_clean_failure

    base = transformers.AutoModelForCausalLM.from_pretrained(llama_folder).eval()
    adapted = peft.get_peft_model(
        base, peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj"])
    )
    good = tmp_path / "good"
    adapted.save_pretrained(good)
    config = json.loads((good / "adapter_config.json").read_text())
    weights = safetensors_torch.load_file(str(good / "adapter_model.safetensors"))

    def header_of(length):
        return lambda f: f.write_bytes(struct.pack("<Q", length) + b"{}")

    def nan_weights(f):
        f.unlink()
        safetensors_torch.save_file({k: v * float("nan") for k, v in weights.items()}, str(f))

    def link_to_zero(f):
        f.unlink()
        f.symlink_to("/dev/zero")

    file_cases = {
        "header": (header_of(10**15), "is not a readable safetensors file"),
        "zero": (link_to_zero, "is not a regular file: not a safetensors file"),
        "nan": (nan_weights, "holds NaN or infinite values: refusing these weights"),
    }
    config_cases = {
        "alpha_nan": ({"lora_alpha": float("nan")}, "lora_alpha is not a finite number"),
        "alpha_negative": ({"lora_alpha": -8}, "lora_alpha must be greater than 0"),
        "r_zero": ({"r": 0}, "r is outside 1..1024"),
        "r_huge": ({"r": 1_000_000_000}, "r is outside 1..1024"),
        "ia3": ({"peft_type": "IA3"}, "peft_type 'IA3' is not LoRA"),
    }
    cases = {name: (change, None, words) for name, (change, words) in file_cases.items()}
    cases |= {name: (None, change, words) for name, (change, words) in config_cases.items()}
    for name, (change_file, change_config, words) in cases.items():
        folder = tmp_path / name
        shutil.copytree(good, folder)
        if change_file is not None:
            change_file(folder / "adapter_model.safetensors")
        if change_config is not None:
            (folder / "adapter_config.json").write_text(json.dumps({**config, **change_config}))
        out = tmp_path / f"{name}.pt"
        argv = ["import", folder, "--base", llama_folder, "--out", out, "--quiet"]
        assert_clean_failure(main, [str(a) for a in argv], capsys, words)
        assert not out.exists(), name


def test_lora_learning_rate_follows_the_flag_and_a_typed_lr_wins():
    """--lora-rank brings LoRA's measured learning rate (NOTES.md); full fine-tuning keeps the
    preset's; --lr typed wins either way."""
    from austen_net.config import TrainConfig

    lora = TrainConfig(init_from="gpt2", lora_rank=8).settle()  # (train's first step)
    full = TrainConfig(init_from="gpt2").settle()
    typed = TrainConfig(
        init_from="gpt2", lora_rank=8, given=frozenset({"init_from", "lora_rank", "lr"}), lr=2e-4
    ).settle()
    assert (lora.lr, full.lr, typed.lr) == (LORA_LR, 5e-5, 2e-4)
