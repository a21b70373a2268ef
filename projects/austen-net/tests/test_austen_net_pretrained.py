"""Pretrained models in transformers' layout: a random GPT-2 and a random Llama (grouped-query
attention, rope_theta 100000, untied head) built with transformers, saved, imported, compared with
transformers to 1e-4, fine-tuned with --init-from, resumed exactly and exported back."""

import json

import pytest
import torch
from austen_net_hf import PARAGRAPH, corpus_text

from austen_net.cli import main
from austen_net.corpus import load_text, split_corpus
from austen_net.decode import generate
from austen_net.inference import bpc_of_texts, load_model
from austen_net.pretrained import converted, load_pretrained, source_folder
from shared.checkpoint import load_checkpoint
from shared.errors import UserError

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")


@pytest.fixture(params=["gpt2", "llama", "llama3"])
def source(request):
    return request.getfixturevalue(f"{request.param}_folder")


def hf_model(folder):
    model = transformers.AutoModelForCausalLM.from_pretrained(folder).eval()
    model.generation_config.eos_token_id = None  # greedy for exactly 30 tokens, as ours
    return model


def test_logits_and_greedy_tokens_equal_transformers(source):
    ours, _, about = load_pretrained(str(source))
    theirs = hf_model(source)
    assert about["architecture"] == type(theirs).__name__
    ids = torch.randint(0, ours.cfg.vocab_size, (2, 50), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert (ours(ids)[0] - theirs(ids).logits).abs().max() < 1e-4
    prompt = ids[:1, :8]
    new = torch.stack(list(generate(ours, prompt, 30, temperature=0.0)), dim=1)
    expected = theirs.generate(prompt, max_new_tokens=30, do_sample=False)[:, 8:]
    assert new.tolist() == expected.tolist()


def test_tokenizer_encodes_and_decodes_as_autotokenizer(source):
    _, tok, _ = load_pretrained(str(source))
    auto = transformers.AutoTokenizer.from_pretrained(source)
    ids = auto(PARAGRAPH, add_special_tokens=False).input_ids
    assert tok.encode(PARAGRAPH) == ids
    assert tok.decode(ids) == auto.decode(ids) == PARAGRAPH
    assert tok.encode_array(PARAGRAPH).tolist() == ids


def test_import_generate_export_round_trip(source, tmp_path, capsys):
    ckpt, out = tmp_path / "imported.pt", tmp_path / "hf"
    assert main(["import", str(source), "--out", str(ckpt)]) == 0
    imported = json.loads(capsys.readouterr().out)
    assert imported["tokenizer"] == "hf" and imported["out"] == str(ckpt)
    argv = ["generate", "--checkpoint", str(ckpt), "--max-new-tokens", "12", "--seed", "0"]
    assert main([*argv, "--prompt", "Sir Walter"]) == 0
    assert capsys.readouterr().out.startswith("Sir Walter")
    assert main(["export", "--checkpoint", str(ckpt), "--out", str(out)]) == 0
    exported = json.loads(capsys.readouterr().out)
    original, back = hf_model(source), hf_model(out)
    assert exported["architecture"] == type(original).__name__ == type(back).__name__
    ids = torch.randint(0, original.config.vocab_size, (2, 40))
    with torch.no_grad():
        assert (back(ids).logits - original(ids).logits).abs().max() < 1e-4
    auto, again = (transformers.AutoTokenizer.from_pretrained(f) for f in (source, out))
    assert again(PARAGRAPH).input_ids == auto(PARAGRAPH).input_ids
    assert again.eos_token == auto.eos_token


def test_finetune_lowers_validation_loss_resumes_exactly_and_exports(
    llama_folder, tmp_path, capsys
):
    text = tmp_path / "own.txt"
    text.write_text(corpus_text())
    split = split_corpus(load_text([text], quiet=True), 0.1)
    model, tok, _ = load_pretrained(str(llama_folder), block_size=64)
    before = bpc_of_texts(model, tok, split.val, 8, torch.device("cpu"), "fp32")
    argv = [
        "train",
        "--init-from",
        str(llama_folder),
        "--text",
        str(text),
        "--block-size",
        "64",
        "--batch-size",
        "4",
        "--grad-accum",
        "2",
        "--lr",
        "2e-3",
        "--warmup-steps",
        "2",
        "--max-steps",
        "20",
        "--eval-every",
        "10",
        "--eval-tokens",
        "0",
        "--quiet",
    ]
    straight = tmp_path / "straight"
    assert main([*argv, "--out", str(straight)]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["init_from"] == str(llama_folder)  # --preset finetune, --block-size 64
    assert summary["tokenizer"] == "hf" and summary["steps"] == 20
    assert summary["best_val_loss"] < before["loss_per_token"] - 0.05, (summary, before)

    # stopped after its first step, then resumed: the same weights as the straight run
    cut = tmp_path / "cut"
    assert main([*argv, "--out", str(cut), "--max-minutes", "0.00001"]) == 0
    assert load_checkpoint(cut / "checkpoints" / "last.pt", project="austen-net")["step"] == 1
    assert main([*argv, "--out", str(cut), "--resume", "latest"]) == 0
    a = load_checkpoint(straight / "checkpoints" / "last.pt", project="austen-net")["model"]
    b = load_checkpoint(cut / "checkpoints" / "last.pt", project="austen-net")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    capsys.readouterr()

    out = tmp_path / "hf"
    best = straight / "checkpoints" / "best.pt"
    assert main(["export", "--checkpoint", str(best), "--out", str(out)]) == 0
    ours, _, _ = load_model(best, torch.device("cpu"))
    ids = torch.randint(0, ours.cfg.vocab_size, (1, 30))
    with torch.no_grad():
        assert (hf_model(out)(ids).logits - ours(ids)[0]).abs().max() < 1e-4


def test_shape_flags_that_contradict_the_source_are_refused(gpt2_folder, tmp_path, capsys):
    text = tmp_path / "own.txt"
    text.write_text(corpus_text())
    base = ["train", "--init-from", str(gpt2_folder), "--text", str(text), "--out", str(tmp_path)]
    assert main([*base, "--n-layer", "6"]) == 2
    assert "--n-layer 6: the model comes from" in capsys.readouterr().err
    assert main([*base, "--block-size", "512"]) == 2
    assert "context of 128" in capsys.readouterr().err
    assert main(["train", "--preset", "finetune", "--text", str(text)]) == 2
    assert "add --init-from" in capsys.readouterr().err


def test_what_austen_net_cannot_run_is_refused_by_name(llama_folder, tmp_path, monkeypatch):
    config = json.loads((llama_folder / "config.json").read_text())
    for change, words in (
        ({"rope_scaling": {"rope_type": "linear", "factor": 2.0}}, "rope scaling 'linear'"),
        ({"rope_scaling": {"rope_type": "yarn", "factor": 2.0}}, "rope scaling 'yarn'"),
        ({"sliding_window": 64, "use_sliding_window": True}, "sliding attention window"),
        ({"attention_bias": True}, "attention_bias"),
        ({"architectures": ["MixtralForCausalLM"], "model_type": "mixtral"}, "MixtralForCausalLM"),
    ):
        folder = tmp_path / words.replace(" ", "_")
        folder.mkdir()
        for f in llama_folder.iterdir():
            (folder / f.name).write_bytes(f.read_bytes())
        (folder / "config.json").write_text(json.dumps({**config, **change}))
        with pytest.raises(UserError, match=words):
            load_pretrained(str(folder))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UserError, match="pass the folder that holds its config.json"):
        source_folder("no-such-org/no-such-model")


def test_a_checkpoint_from_before_the_new_fields_loads_unchanged(tmp_path, capsys):
    """Checkpoints written before GPTConfig learnt n_kv_head, rope_theta, intermediate_size,
    norm_eps and gelu hold none of them: they load, score and generate exactly as before."""
    text = tmp_path / "own.txt"
    text.write_text(corpus_text())
    run = tmp_path / "run"
    train = ["train", "--preset", "tiny", "--tokenizer", "char", "--text", str(text)]
    assert main([*train, "--max-steps", "3", "--quiet", "--out", str(run)]) == 0
    path = run / "checkpoints" / "last.pt"
    state = torch.load(path, weights_only=False)
    old = dict(state)
    old["model_config"] = {
        k: v
        for k, v in state["model_config"].items()
        if k not in ("n_kv_head", "rope_theta", "intermediate_size", "norm_eps", "gelu")
    }
    torch.save(old, tmp_path / "old.pt")
    new_model, _, _ = load_model(path, torch.device("cpu"))
    old_model, _, _ = load_model(tmp_path / "old.pt", torch.device("cpu"))
    ids = torch.randint(0, new_model.cfg.vocab_size, (1, 20))
    with torch.no_grad():
        assert torch.equal(new_model(ids)[0], old_model(ids)[0])
    capsys.readouterr()
    argv = ["generate", "--max-new-tokens", "20", "--seed", "1", "--prompt", "Anne"]
    assert main([*argv, "--checkpoint", str(path)]) == 0
    assert main([*argv, "--checkpoint", str(tmp_path / "old.pt")]) == 0
    first, second = capsys.readouterr().out.split("Anne")[1:]
    assert first == second


def test_weights_read_as_stored_are_copies_of_their_own_and_ties_stay_one_tensor():
    """``converted(sd, None)`` (a LoRA base read for generation): the values as stored, in memory
    that is no view of what was read (a view would keep the whole mapped file alive while merged
    layers are added), a tied weight still one tensor, and ``sd`` emptied as it goes."""
    tied, other = torch.randn(6, 4).bfloat16(), torch.randn(3, 4).t()  # one not contiguous
    sd = {"emb": tied, "head": tied, "proj": other}
    out = converted(sd, None)
    assert sd == {} and out["emb"] is out["head"] and out["proj"].is_contiguous()
    assert out["emb"].dtype == torch.bfloat16 and torch.equal(out["emb"], tied)
    assert torch.equal(out["proj"], other)
    assert out["emb"].untyped_storage().data_ptr() != tied.untyped_storage().data_ptr()
    assert converted({"w": tied}, torch.float32)["w"].dtype == torch.float32
