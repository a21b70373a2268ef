"""Bad input as users give it: one line naming the problem, exit 2, nothing half-written."""

import pytest

from austen_net.cli import main
from shared.checkpoint import save_checkpoint
from shared.testing import assert_clean_failure


def test_bad_inputs(capsys, corpus, tmp_path):
    other = save_checkpoint(tmp_path / "other.pt", {"model": {}}, project="audio-net")
    partial = save_checkpoint(tmp_path / "partial.pt", {"model": {}}, project="austen-net")
    text = tmp_path / "notes.txt"
    text.write_text("")
    one_line = tmp_path / "tiny_corpus"
    one_line.mkdir()
    (one_line / "105-persuasion.txt").write_text("Anne.\n\nYes.")
    cases = [
        (["generate", "--checkpoint", other], "checkpoint of 'audio-net'"),
        (["generate", "--checkpoint", partial], "lacks model_config, tokenizer, step, config"),
        (["generate", "--checkpoint", tmp_path / "none.pt"], "does not exist"),
        (["generate", "--checkpoint", partial, "--top-k", "-1"], "--top-k must be >= 0"),
        (["generate", "--checkpoint", partial, "--top-p", "1.5"], "--top-p must be in (0, 1]"),
        (["train", "--corpus-dir", tmp_path / "nothing"], "not a folder"),
        (["train", "--corpus-dir", text.parent / "corpus", "--max-steps", "0"], "at least 1"),
        (
            ["train", "--corpus-dir", one_line, "--tokenizer", "char", "--val-fraction", "0.01"],
            "the validation split holds no text",
        ),
        (
            ["train", "--corpus-dir", corpus, "--holdout-works", "105", "121"],
            "every work is held out",
        ),
        (["evaluate", "--checkpoint", other], "checkpoint of 'audio-net'"),
        (["train", "--corpus-dir", corpus, "--out", text], "is a file, not a folder"),
    ]
    for argv, message in cases:
        assert_clean_failure(main, argv, capsys, message, root=tmp_path)
    assert not (tmp_path / "runs").exists()


def test_generate_requires_a_checkpoint(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["generate"])
    assert exc.value.code == 2 and "--checkpoint" in capsys.readouterr().err
