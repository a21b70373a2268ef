import subprocess
import sys

import pytest

from multi_net.cli import COMMANDS, main


def test_help_lists_the_subcommands(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert name in out


def test_console_script_runs():
    out = subprocess.run(
        [sys.executable, "-m", "multi_net.cli", "--help"], capture_output=True, text=True
    )
    assert out.returncode == 0 and "usage: multi-net" in out.stdout
