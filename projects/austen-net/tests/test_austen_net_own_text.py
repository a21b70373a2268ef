"""Training on a user's own text (``train --text``): a generated play, not Austen, learned and
scored, resumed and generated from with the commands as they are; bad text refused in one line."""

import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from austen_net.cli import main as cli_main
from austen_net.corpus import load_text, paragraph_cut
from austen_net.demo import default_prompt, text_names
from austen_net.presets import PRESETS
from austen_net.train import preset_name
from testkit import assert_clean_failure

SPEAKERS = ["HAMLET", "OPHELIA", "POLONIUS", "HORATIO"]
LINES = [
    "What news from the castle tonight?",
    "The king is walking on the walls again.",
    "Speak softly, for the guards are near.",
    "I have seen a ghost upon the stair.",
]


def play(scenes: int, seed: int) -> str:
    """A learnable play: speaker, colon, one of four lines; scenes apart by blank lines."""
    import random

    rng = random.Random(seed)
    out = []
    for n in range(scenes):
        speech = [f"{rng.choice(SPEAKERS)}: {rng.choice(LINES)}" for _ in range(rng.randint(3, 6))]
        out.append(f"SCENE {n + 1}\n" + "\n".join(speech))
    return "\n\n".join(out) + "\n"


def main(argv) -> int:
    return cli_main([str(a) for a in argv])


def last_json(capsys):
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


TINY = ["--preset", "tiny", "--batch-size", "8", "--warmup-steps", "5", "--lr", "3e-3"]
TINY += ["--device", "cpu", "--quiet", "--seed", "1"]


@pytest.fixture()
def own_text(tmp_path):
    path = tmp_path / "my-play.txt"
    path.write_text(play(250, 0), encoding="utf-8")
    return path


def test_trains_on_your_own_text_and_every_command_uses_it(capsys, own_text, tmp_path):
    out = tmp_path / "run"
    argv = ["train", "--text", own_text, "--tokenizer", "char", *TINY, "--beta2", "0.99"]
    assert main([*argv, "--max-steps", "60", "--eval-every", "20", "--out", out]) == 0
    summary = last_json(capsys)
    # learned: far below the log2(vocabulary) bits/char a uniform guess costs
    chance = math.log2(summary["vocab_size"])
    assert summary["val_bpc"] < 0.6 * chance, (chance, summary)
    text = summary["text"]
    assert text["files"] == [str(own_text)] and text["characters"] == len(own_text.read_text())
    assert len(text["sha256"]) == 64
    assert json.loads((out / "config.json").read_text())["beta2"] == 0.99

    # evaluate without flags scores the run's own validation split, not the Austen corpus
    ckpt = out / "checkpoints" / "last.pt"
    assert main(["evaluate", "--checkpoint", ckpt, "--out", tmp_path / "e", "--quiet"]) == 0
    ev = last_json(capsys)
    assert ev["source"] == "validation split" and abs(ev["bpc"] - summary["val_bpc"]) < 0.02

    # resume with no data flags goes on with the same text
    argv = ["train", *TINY, "--tokenizer", "char", "--max-steps", "70", "--eval-every", "20"]
    assert main([*argv, "--resume", ckpt, "--out", tmp_path / "resumed"]) == 0
    resumed = last_json(capsys)
    assert resumed["steps"] == 70 and resumed["text"]["sha256"] == text["sha256"]
    # the text filled in from the run keeps --text's rules: no Gutenberg ids to hold out
    assert main([*argv, "--resume", ckpt, "--holdout-works", "0", "--out", tmp_path / "h"]) == 2
    assert "does not apply to --text" in capsys.readouterr().err

    prompt = ["--prompt", "HAMLET:", "--max-new-tokens", "40", "--seed", "0"]
    assert main(["generate", "--checkpoint", ckpt, *prompt, "--device", "cpu"]) == 0
    assert capsys.readouterr().out.startswith("HAMLET:")

    # the demo names the run's own text, and offers its opening as the prompt (not Austen's)
    state = torch.load(ckpt, weights_only=True)
    name, trained_on = text_names(state)
    assert name == "my-play" and trained_on.startswith("my-play (")
    prompt = default_prompt(state)
    assert prompt and prompt in own_text.read_text() and "truth universally" not in prompt
    assert summary["preset"] == "tiny"


def test_the_summary_names_a_custom_shape_custom():
    shape = dict(PRESETS["tiny"])
    assert preset_name(SimpleNamespace(preset="tiny", **shape)) == "tiny"
    assert preset_name(SimpleNamespace(preset="tiny", **{**shape, "n_embd": 96})) == "custom"
    assert default_prompt({"text": None}) == "It is a truth universally acknowledged"
    assert text_names({})[0] == "Jane Austen"


def test_a_small_text_caps_the_bpe_vocabulary(capsys, tmp_path):
    path = tmp_path / "short.txt"
    path.write_text(play(40, 1))
    argv = ["train", "--text", path, "--vocab-size", "4096", *TINY[:-3], "--seed", "1"]
    assert main([*argv, "--max-steps", "2", "--out", tmp_path / "run"]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out.strip().splitlines()[-1])
    assert 260 <= summary["vocab_size"] < 4096
    assert f"supports a vocabulary of {summary['vocab_size']} BPE pieces" in captured.err


def test_folders_are_read_recursively_and_markers_only_where_present(tmp_path):
    folder = tmp_path / "notes"
    (folder / "b").mkdir(parents=True)
    (folder / "a.txt").write_text("Title: my own heading\n\n\nkept because no marker is here\n")
    (folder / "b" / "c.txt").write_text(
        "licence\n*** START OF THE PROJECT GUTENBERG EBOOK X ***\nbody\n"
        "*** END OF THE PROJECT GUTENBERG EBOOK X ***\nfooter\n"
    )
    (folder / "image.png").write_bytes(b"\x89PNG\r\n")
    works = load_text([folder], quiet=True)
    assert [w.title for w in works] == ["a.txt", "c.txt"]
    assert works[0].text.startswith("Title: my own heading")
    assert works[1].text == "body\n"


def test_the_validation_cut_falls_on_a_boundary():
    text = "one long paragraph\nwith lines\nbut no blank line at its end\n"
    cut = paragraph_cut(text, 0.5)
    assert text[cut - 1] == "\n" and 0 < cut < len(text)
    one_line = "words " * 50
    assert one_line[paragraph_cut(one_line, 0.9) - 1] == " "


def test_bad_text_is_one_message(capsys, tmp_path, own_text):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n  \n")
    binary = tmp_path / "model.bin"
    binary.write_bytes(bytes(range(256)) * 4)
    no_txt = tmp_path / "pictures"
    no_txt.mkdir()
    (no_txt / "x.png").write_bytes(b"\x89PNG")
    cases = [
        (["train", "--text", empty], f"--text {empty} holds no text"),
        (["train", "--text", binary], "is not a text file"),
        (["train", "--text", no_txt], "holds no .txt files"),
        (["train", "--text", tmp_path / "gone.txt"], "no such file or folder"),
        (["train", "--text", own_text, "--holdout-works", "105"], "does not apply to --text"),
        (["train", "--text", own_text, "--corpus-dir", tmp_path], "not both"),
    ]
    for argv, message in cases:
        assert_clean_failure(cli_main, argv, capsys, message, root=tmp_path)
    assert not (tmp_path / "runs").exists()


def test_utf16_text_is_read_and_a_file_named_twice_is_read_once(tmp_path, monkeypatch):
    """Windows' "Unicode" text (UTF-16 with a BOM) reads as text, not as NUL bytes; one file by
    two spellings (and through a link) is one work."""
    from austen_net.corpus import text_files

    text = "Ça commence ici.\n\nEt ça continue.\n"
    (tmp_path / "le.txt").write_bytes(text.encode("utf-16"))  # with its BOM
    (tmp_path / "be.txt").write_bytes(b"\xfe\xff" + text.encode("utf-16-be"))
    (tmp_path / "32.txt").write_bytes(text.encode("utf-32"))
    works = load_text([tmp_path / "le.txt", tmp_path / "be.txt", tmp_path / "32.txt"], quiet=True)
    assert [w.text for w in works] == [text] * 3
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    (tmp_path / "link.txt").symlink_to(tmp_path / "le.txt")
    named = [Path("le.txt"), Path("sub/../le.txt"), tmp_path / "le.txt", Path("link.txt")]
    assert text_files(named) == [Path("le.txt")]


def test_a_character_vocabulary_is_capped(capsys):
    """100,001 distinct characters once made a 5.7 GB tiny model: the most frequent 4,095 are
    kept, the rest read as the unknown character, and the log says how much of the text."""
    from austen_net.tokenizer import MAX_CHARS, UNK, build_tokenizer

    rare = "".join(chr(0x4E00 + i) for i in range(20_000))  # each once
    common = "the quick brown fox jumps over the lazy dog\n" * 50
    tok = build_tokenizer([common + rare], "char", 0, quiet=False)
    assert tok.vocab_size == MAX_CHARS and set(common) <= set(tok.chars)
    assert tok.encode(chr(0x4E00 + 19_999)) == [tok.index[UNK]]
    assert "20,0" in capsys.readouterr().err  # the distinct count, in the message


def test_prompts_that_are_not_valid_utf8_generate(capsys, tmp_path, own_text):
    """`--prompt $'abc\\xff\\xfe'` (undecodable bytes) and a lone surrogate: text, not a
    sentencepiece traceback."""
    run = tmp_path / "run"
    argv = ["train", "--text", own_text, "--vocab-size", "400", *TINY, "--max-steps", "2"]
    assert main([*argv, "--out", run]) == 0
    ckpt = run / "checkpoints" / "best.pt"
    for prompt in ("abc\udcff\udcfe", "x\ud800y"):
        capsys.readouterr()
        gen = ["generate", "--checkpoint", ckpt, "--prompt", prompt, "--max-new-tokens", "5"]
        assert main([*gen, "--seed", "0"]) == 0
        out = capsys.readouterr()
        assert "Traceback" not in out.err and "\ufffd" in out.out
