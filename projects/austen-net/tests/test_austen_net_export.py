"""Export to Hugging Face transformers, checked against our own model: logits to 1e-4 (fp32) and
the same 50 greedy tokens for the Llama and GPT-2 layouts, and AutoTokenizer encoding and decoding
a corpus paragraph (newlines, characters never seen) to the same ids and text as ours."""

import json

import pytest
import torch
from austen_net_data import austen_like, write_corpus
from transformers import AutoModelForCausalLM, AutoTokenizer

from austen_net.cli import main as cli_main
from austen_net.decode import generate
from austen_net.export import require_transformers
from austen_net.inference import load_model
from shared.errors import UserError
from testkit import assert_clean_failure, assert_modes_follow_umask, check_export_folder_refusals

TINY = ["--preset", "tiny", "--batch-size", "8", "--max-steps", "6", "--eval-every", "3"]
TINY += ["--warmup-steps", "2", "--device", "cpu", "--quiet"]
LAYOUTS = {
    "llama": ([], "bpe", "LlamaForCausalLM"),
    "gpt2": (
        ["--pos", "learned", "--norm", "layernorm", "--mlp", "gelu"],
        "char",
        "GPT2LMHeadModel",
    ),
}


def main(argv) -> int:
    return cli_main([str(a) for a in argv])


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_corpus(tmp_path_factory.mktemp("export") / "corpus", paragraphs=120)


@pytest.mark.parametrize("layout", ["llama", "gpt2"])
def test_transformers_gives_our_logits_tokens_and_text(capsys, tmp_path, corpus, layout):
    flags, tokenizer, architecture = LAYOUTS[layout]
    run = tmp_path / "run"
    argv = ["train", "--corpus-dir", corpus, "--tokenizer", tokenizer, "--vocab-size", "400"]
    assert main([*argv, *flags, *TINY, "--out", run]) == 0
    ckpt, out = run / "checkpoints" / "best.pt", tmp_path / "hf"
    capsys.readouterr()
    assert main(["export", "--checkpoint", ckpt, "--out", out]) == 0
    made = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert made["architecture"] == architecture
    assert_modes_follow_umask(out)  # model.safetensors was 0600 under umask 022
    card = (out / "README.md").read_text()
    assert "Validation bits per character" in card and "austen-net train" in card

    ours, tok, _ = load_model(ckpt, torch.device("cpu"))
    ours.eval()
    hf = AutoModelForCausalLM.from_pretrained(out).eval()
    hf_tok = AutoTokenizer.from_pretrained(out)
    assert type(hf).__name__ == architecture

    paragraph = austen_like(6, 11).replace("\r\n", "\n") + "\n\nUnseen: ✓ Łódź 漢字 ß 1813\n"
    ids = tok.encode(paragraph)
    assert hf_tok.encode(paragraph, add_special_tokens=False) == ids
    assert hf_tok.decode(ids) == tok.decode(ids)
    if tokenizer == "bpe":  # byte fallback: every character comes back
        assert hf_tok.decode(ids) == paragraph

    batch = torch.tensor([ids[:48], ids[48:96]])
    with torch.no_grad():
        torch.testing.assert_close(hf(batch).logits, ours(batch)[0], atol=1e-4, rtol=1e-4)
        greedy = [int(t) for t in generate(ours, batch[:1, :10], 50, temperature=0.0)]
        theirs = hf.generate(batch[:1, :10], max_new_tokens=50, do_sample=False, top_k=None)
    assert theirs[0, 10:].tolist() == greedy


def test_export_refusals(capsys, tmp_path, corpus):
    run = tmp_path / "run"
    odd = ["--pos", "rope", "--norm", "layernorm", "--tokenizer", "char"]
    assert main(["train", "--corpus-dir", corpus, *odd, *TINY, "--out", run]) == 0
    ckpt = run / "checkpoints" / "best.pt"
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    cases = [
        (
            ["export", "--checkpoint", ckpt, "--out", tmp_path / "x"],
            "--pos learned --norm layernorm",
        ),
        (["export", "--checkpoint", ckpt, "--out", tmp_path / "full"], "not an empty folder"),
        (["export", "--checkpoint", tmp_path / "none.pt", "--out", tmp_path / "y"], "does not"),
    ]
    for argv, message in cases:
        assert_clean_failure(cli_main, argv, capsys, message, root=tmp_path)
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"
    assert not (tmp_path / "x").exists()
    links = tmp_path / "links"  # a symlinked --out is refused before the export runs
    links.mkdir()
    check_export_folder_refusals(cli_main, ["export", "--checkpoint", ckpt], links, capsys)


def test_export_without_the_extra_names_it(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "transformers" else real(n, *a)
    )
    with pytest.raises(UserError, match="--extra export"):
        require_transformers()


def test_export_onto_a_full_disk_is_one_line_and_leaves_nothing(
    capsys, tmp_path, corpus, monkeypatch
):
    """safetensors reports a full disk as its own error type (Rust's io::Error in the text): the
    command says so in one line (status 2), and the staging folder is gone."""
    import transformers.modeling_utils
    from safetensors import SafetensorError

    from testkit import leftovers

    run = tmp_path / "run"
    assert main(["train", "--corpus-dir", corpus, "--tokenizer", "char", *TINY, "--out", run]) == 0

    def full_disk(*args, **kwargs):
        raise SafetensorError(
            'Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "No '
            'space left on device" })'
        )

    monkeypatch.setattr(transformers.modeling_utils, "safe_save_file", full_disk)
    capsys.readouterr()
    argv = ["export", "--checkpoint", run / "checkpoints" / "best.pt", "--out", tmp_path / "hf"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("no space left on device") and len(err.splitlines()) == 1, err
    assert not (tmp_path / "hf").exists() and not list(tmp_path.glob(".hf.*"))
    assert leftovers(tmp_path) == []
