"""Command-line checks: ``--help`` of every subcommand, clean failures that leave nothing behind, export folders refused before any work, numeric flags checked while parsing."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from testkit.imports import heavy_help_imports


@dataclass
class HelpFacts:
    """What ``--help`` showed: the program's help text, ``python -m <module> --help``'s status
    and output, and the heavy modules (torch, matplotlib, gradio) each ``--help`` imported."""

    text: str
    module_status: int
    module_text: str
    heavy_imports: dict[str, list[str]]


def cli_help(main: Callable, commands: dict, module: str, capsys) -> HelpFacts:
    """Runs ``--help`` in process, ``python -m <module> --help``, and each ``--help`` in a fresh
    interpreter that reports what it imported. First, every command's ``"module:function"``
    string must name a function (a typo there would fail only when a user runs the command)."""
    unresolved = [f"{name}: {cmd.run}" for name, cmd in commands.items() if not callable(cmd.run)]
    assert not unresolved, unresolved
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    proc = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True)
    return HelpFacts(text, proc.returncode, proc.stdout, heavy_help_imports(module, commands))


def leftovers(root: Path) -> list[Path]:
    """Half-written files under ``root``: temporaries of atomic writes."""
    return sorted(p for p in Path(root).rglob(".*.tmp"))


def assert_clean_failure(
    main: Callable,
    argv: list[str],
    capsys,
    message: str,
    *,
    code: int = 2,
    root: Path | None = None,
) -> str:
    """``main(argv)`` exits with ``code`` and ONE line on stderr naming the problem, no traceback,
    and (with ``root``) no temporaries left under ``root``. Returns that line."""
    try:
        got = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse's own refusal of a flag: exit 2, one line
        got = exc.code
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert got == code, f"exit {got}, not {code}: {err}"
    assert "Traceback" not in err, err
    errors = [line for line in lines if ": error: " in line]
    assert len(errors) == 1, f"expected one error line, got: {err}"
    assert message in errors[0], f"{message!r} not in {errors[0]!r}"
    if root is not None:
        assert leftovers(root) == [], leftovers(root)
    return errors[0]


def check_export_folder_refusals(main: Callable, argv: list, tmp: Path, capsys) -> None:
    """``main([*argv, "--out", X])`` refuses, before any work and writing nothing, an ``--out``
    that is a symbolic link (to a full or an empty folder), a folder holding a file, or a file."""
    full = tmp / "system-folder"
    full.mkdir()
    (full / "keep.txt").write_text("mine")
    empty = tmp / "empty-folder"
    empty.mkdir()
    a_file = tmp / "a-file"
    a_file.write_text("mine")
    (tmp / "to-full").symlink_to(full)
    (tmp / "to-empty").symlink_to(empty)
    cases = [
        (tmp / "to-full", "is a symbolic link"),
        (tmp / "to-empty", "is a symbolic link"),
        (full, "not an empty folder"),
        (a_file, "is a file, not a folder"),
    ]
    with read_only_mount(tmp / "read-only") as mounted:
        if mounted is not None:  # refused before any work, naming --out, not a staging folder
            cases.append((mounted / "export", f"--out {mounted / 'export'}: cannot write in"))
        for out, message in cases:
            assert_clean_failure(main, [*argv, "--out", out], capsys, message, root=tmp)
    assert [p.name for p in full.iterdir()] == ["keep.txt"] and not any(empty.iterdir())
    assert a_file.read_text() == "mine" and (full / "keep.txt").read_text() == "mine"


@contextlib.contextmanager
def read_only_mount(folder: Path):
    """A read-only (tmpfs) mount at ``folder``, or None where this process may not mount (not
    root, or a container without the capability): the caller's case is then left out."""
    folder.mkdir(parents=True, exist_ok=True)
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(folder)], capture_output=True
    )
    try:
        yield folder if made.returncode == 0 else None
    finally:
        if made.returncode == 0:
            subprocess.run(["umount", str(folder)], check=True)


def assert_modes_follow_umask(folder: Path) -> None:
    """Every file and folder of an export has the modes the umask gives (0644/0755 under 022),
    not a library's private 0600."""
    import os

    mask = os.umask(0o022)
    os.umask(mask)
    for path in [folder, *folder.rglob("*")]:
        want = (0o777 if path.is_dir() else 0o666) & ~mask
        assert path.stat().st_mode & 0o777 == want, f"{path}: {oct(path.stat().st_mode & 0o777)}"


def assert_numeric_flags_checked(main: Callable, commands: dict, capsys) -> int:
    """Every int and float flag of every command refuses NaN, infinities and integers beyond 64
    bits when parsed: exit 2 and argparse's one line naming the flag, no traceback. Returns how
    many flags were tried."""
    import dataclasses
    import typing

    from shared.cli import _unwrap_optional

    tried = 0
    for name, cmd in commands.items():
        if cmd.config is None:
            continue
        hints = typing.get_type_hints(cmd.config)
        for f in dataclasses.fields(cmd.config):
            if not f.init or f.metadata.get("positional"):
                continue
            tp, _ = _unwrap_optional(hints[f.name])
            if typing.get_origin(tp) in (list, tuple):
                tp = typing.get_args(tp)[0]
            if tp not in (int, float):
                continue
            flag = "--" + f.name.replace("_", "-")
            bad = ["nan", "inf", "-inf", "1e400"] if tp is float else ["nan", "9" * 25, "1.5"]
            for value in bad:
                with pytest.raises(SystemExit) as exc:
                    main([name, flag, value])
                err = capsys.readouterr().err
                assert exc.value.code == 2, (name, flag, value)
                assert f"argument {flag}" in err and "Traceback" not in err, err
            tried += 1
    return tried
