from intro_nn.cli import COMMANDS, main
from testkit import check_cli_help


def test_help_lists_the_subcommands(capsys):
    check_cli_help(main, COMMANDS, "intro_nn.cli", "intro-nn", capsys)
