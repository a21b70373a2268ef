"""The README as a reader uses it: its commands parse with this CLI, its links exist, its offline
block runs as written, and a flag that does not exist fails the check."""

from pathlib import Path

from multi_net.cli import COMMANDS, DESCRIPTION, PROG, main
from testkit import project_readme, run_offline_block

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_commands_parse_links_exist_and_a_made_up_flag_fails():
    readme = project_readme(README, PROG, DESCRIPTION, COMMANDS)
    assert readme.size_bytes <= 8 * 1024  # a project README stays under 8 KB: depth in NOTES.md
    assert readme.commands_parsed >= 5 and readme.links >= 3 and readme.notes_links >= 1
    assert readme.made_up_flag_refused


def test_the_offline_block_runs_as_written(capsys):
    """The README's first block, pasted: the synthetic benchmark needs no data and no weights."""
    assert run_offline_block(README, PROG, main, None) >= 5
