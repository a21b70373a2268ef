"""The README as a reader uses it: its commands parse with this CLI, its links exist, its offline
block runs as written, and a flag that does not exist fails the check."""

from pathlib import Path

from austen_net.cli import COMMANDS, DESCRIPTION, PROG, main
from testkit import (
    project_readme,
    python_blocks,
    run_offline_block,
    run_shell_block,
    section,
    served_folder,
    shell_blocks,
)

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_commands_parse_links_exist_and_a_made_up_flag_fails():
    readme = project_readme(README, PROG, DESCRIPTION, COMMANDS)
    assert readme.size_bytes <= 8 * 1024  # a project README stays under 8 KB: depth in NOTES.md
    assert readme.commands_parsed >= 5 and readme.links >= 3 and readme.notes_links >= 1
    assert readme.made_up_flag_refused


def test_the_offline_block_runs_as_written(real_data, capsys, monkeypatch):
    """The README's first block, pasted in a fresh clone: ``data sample`` downloads two real
    novels (served here from the real samples on 127.0.0.1, through the same fetch and pinned
    edition checks as from Gutenberg), then every command exits 0."""
    from austen_net import corpus

    files = {int(p.name.split("-")[0]): p.name for p in (real_data / "austen").glob("*.txt")}
    with served_folder(real_data / "austen") as url:
        monkeypatch.setattr(corpus, "gutenberg_urls", lambda work_id: [url + files[work_id]])
        assert run_offline_block(README, PROG, main, None) >= 5
    assert sorted(p.name for p in Path("data/austen").glob("*.txt")) == ["pg105.txt", "pg121.txt"]


def test_the_export_section_runs_as_written(capsys):
    """A tiny model where the README's export command reads it; then the commands and the
    transformers snippet exactly as the README shows them."""
    from austen_net_data import write_corpus

    corpus = write_corpus(Path("corpus"), paragraphs=60)
    argv = ["train", "--corpus-dir", str(corpus), "--preset", "tiny", "--tokenizer", "char"]
    argv += ["--max-steps", "4", "--eval-every", "2", "--device", "cpu", "--quiet"]
    assert main([*argv, "--out", "runs/offline/austen-net"]) == 0
    text = section(README.read_text(), "Export to Hugging Face transformers")
    assert run_shell_block(shell_blocks(text)[0], PROG, main) == 1
    capsys.readouterr()
    exec(python_blocks(text)[0], {})
    assert "t is a truth" in capsys.readouterr().out  # ("I" may be unseen by a char model)
