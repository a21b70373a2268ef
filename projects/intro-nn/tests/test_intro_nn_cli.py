from intro_nn.cli import COMMANDS, main
from testkit import cli_help


def test_help_lists_the_subcommands_without_importing_torch(capsys):
    shown = cli_help(main, COMMANDS, "intro_nn.cli", capsys)
    assert all(name in shown.text for name in COMMANDS)
    assert shown.module_status == 0 and "usage: intro-nn" in shown.module_text
    assert shown.heavy_imports == {}  # no --help imports torch, matplotlib or gradio
