"""The README as a reader uses it: its commands parse with this CLI, its links exist, its offline
block runs as written, and a flag that does not exist fails the check."""

from pathlib import Path

from intro_nn.cli import COMMANDS, DESCRIPTION, PROG, main
from testkit import (
    check_readme_commands,
    project_readme,
    python_blocks,
    run_offline_block,
    run_shell_block,
    section,
    shell_blocks,
)

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_commands_parse_links_exist_and_a_made_up_flag_fails():
    readme = project_readme(README, PROG, DESCRIPTION, COMMANDS)
    assert readme.size_bytes <= 8 * 1024  # a project README stays under 8 KB: depth in NOTES.md
    assert readme.commands_parsed >= 5 and readme.links >= 3 and readme.notes_links >= 1
    assert readme.made_up_flag_refused


def test_the_offline_block_runs_as_written(real_data, capsys):
    """The README's first block, pasted: every command exits 0 on the real samples."""
    assert run_offline_block(README, PROG, main, real_data) >= 3


def test_the_front_page_commands_parse():
    front = README.parents[2] / "README.md"
    assert check_readme_commands(front.read_text(), PROG, DESCRIPTION, COMMANDS) >= 1


def test_the_export_section_runs_as_written(capsys):
    """A small MLP where the README's export command reads it; then the command and the
    onnxruntime snippet exactly as the README shows them."""
    from intro_nn_data import write_digit_idx

    write_digit_idx(Path("idx"), 300)
    argv = ["train", "mnist", "--data-dir", "idx", "--epochs", "1", "--no-sklearn", "--quiet"]
    assert main([*argv, "--device", "cpu", "--out", "runs/offline/intro-nn-mnist"]) == 0
    text = section(README.read_text(), "Export to ONNX")
    assert run_shell_block(shell_blocks(text)[0], PROG, main) == 1
    capsys.readouterr()
    exec(python_blocks(text)[0], {})
    assert capsys.readouterr().out.strip() in [str(d) for d in range(10)]
