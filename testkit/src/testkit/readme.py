"""README checks: the shell blocks' commands parse with the real CLI, links exist, and the offline quick start runs."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from testkit.demos import check_demo_serves

FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)


LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def shell_blocks(text: str) -> list[list[str]]:
    """The lines of each fenced bash/sh block, backslash continuations joined."""
    blocks = []
    for lang, body in FENCE.findall(text):
        if lang in ("bash", "sh", "shell"):
            blocks.append([line for line in body.replace("\\\n", " ").splitlines() if line.strip()])
    return blocks


def package_argv(line: str, prog: str) -> list[str] | None:
    """The arguments after ``uv run [--package PROG] [--extra E] ... PROG`` on a command line,
    else None (any other command)."""
    import shlex

    tokens = shlex.split(line, comments=True)
    if tokens[:2] != ["uv", "run"]:
        return None
    i, package = 2, None
    while i < len(tokens) and tokens[i].startswith("--"):
        if tokens[i] in ("--package", "--extra", "--with", "--group") and i + 1 < len(tokens):
            package = tokens[i + 1] if tokens[i] == "--package" else package
            i += 2
        else:
            i += 1
    if package == prog and i < len(tokens) and tokens[i] == prog:
        return tokens[i + 1 :]
    return None


def readme_commands(text: str, prog: str) -> list[list[str]]:
    found = []
    for block in shell_blocks(text):
        found += [a for a in (package_argv(line, prog) for line in block) if a is not None]
    return found


def check_readme_commands(text: str, prog: str, description: str, commands: dict) -> int:
    """Every ``uv run --package PROG PROG ...`` command in ``text`` parses with PROG's CLI (flags,
    choices, required flags); an AssertionError names each one that does not. Returns how many."""
    import contextlib
    import io

    from shared.cli import build_parser, check_required

    parser = build_parser(prog, description, commands)
    bad = []
    found = readme_commands(text, prog)
    for argv in found:
        err = io.StringIO()
        try:
            with contextlib.redirect_stderr(err):
                ns = parser.parse_args(argv)
                cmd = commands[ns._command]
                if cmd.config is not None:
                    check_required(parser.command_parsers[ns._command], cmd.config, ns)
        except SystemExit:
            lines = err.getvalue().strip().splitlines() or ["?"]
            bad.append(f"{prog} {' '.join(argv)}: {lines[-1]}")
    assert not bad, "README commands that do not parse:\n" + "\n".join(bad)
    return len(found)


def check_readme_links(readme: Path) -> int:
    """Every relative link and image path in ``readme`` exists. Returns how many were checked."""
    missing, checked = [], 0
    for target in LINK.findall(readme.read_text()):
        if target.startswith(("http://", "https://", "mailto:", "#")):
            continue
        checked += 1
        if not (readme.parent / target.split("#")[0]).exists():
            missing.append(target)
    assert not missing, f"{readme}: links to missing files: {missing}"
    return checked


def section(text: str, heading: str) -> str:
    """The text of the ``## heading`` section (up to the next heading of that level or higher)."""
    m = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |^# |\Z)", text, re.S | re.M)
    assert m, f"no section '## {heading}'"
    return m.group(1)


def python_blocks(text: str) -> list[str]:
    return [body for lang, body in FENCE.findall(text) if lang == "python"]


def run_shell_block(block: list[str], prog: str, main: Callable, data: Path | None = None) -> int:
    """Run a README's shell block as written: each ``PROG ...`` line through ``main`` in the
    current folder, ``$DATA`` set to ``data``; every command must exit 0. Returns how many ran."""
    ran = 0
    for line in block:
        if line.startswith("DATA="):
            assert data is not None, "the block needs the sample data"
            continue
        argv = package_argv(line.replace("$DATA", str(data)), prog)
        assert argv is not None, f"not a {prog} command: {line}"
        if argv[0] == "demo":  # served as a user starts it, its page fetched, then stopped
            check_demo_serves(main.__module__, argv[1:], line)
        else:
            assert main(argv) == 0, f"failed as written: {line}"
        ran += 1
    return ran


def run_offline_block(readme: Path, prog: str, main: Callable, data: Path | None) -> int:
    """Run the first shell block of the README's ``## Quick start`` (its offline start) as
    written."""
    return run_shell_block(
        shell_blocks(section(readme.read_text(), "Quick start"))[0], prog, main, data
    )


@dataclass
class ReadmeFacts:
    """A project README as checked: its size, how many ``uv run --package PROG PROG`` commands
    parsed, how many of its (and its NOTES.md's) relative links exist (a missing one fails the
    check), and whether a made-up flag fails the command check, as it must."""

    size_bytes: int
    commands_parsed: int
    links: int
    notes_links: int
    made_up_flag_refused: bool


def project_readme(readme: Path, prog: str, description: str, commands: dict) -> ReadmeFacts:
    text = readme.read_text()
    made_up = f"```bash\nuv run --package {prog} {prog} train --no-such-flag 3\n```\n"
    try:
        check_readme_commands(made_up, prog, description, commands)
        refused = False
    except AssertionError as exc:
        refused = "--no-such-flag" in str(exc)
    return ReadmeFacts(
        len(text.encode()),
        check_readme_commands(text, prog, description, commands),
        check_readme_links(readme),
        check_readme_links(readme.parent / "NOTES.md"),
        refused,
    )
