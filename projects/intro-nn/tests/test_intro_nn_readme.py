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
    """The README's first block, pasted in a fresh clone: ``data sample`` downloads the real loan
    CSV and MNIST test pair (served here from the real samples on 127.0.0.1, through the same
    fetch and checks as from the real hosts), then every command exits 0."""
    from intro_nn import data, loan_data

    with served_folder(real_data) as url:
        monkeypatch.setattr(loan_data, "LOAN_URLS", [url + "loan/loan_data.csv"])
        monkeypatch.setattr(data, "MNIST_MIRRORS", (url + "mnist/",))
        assert run_offline_block(README, PROG, main, None) >= 5
    assert sorted(p.name for p in Path("data/mnist").iterdir()) == sorted(data.MNIST_TEST)


def test_a_sample_that_is_not_mnist_is_removed_and_refused(capsys, monkeypatch, tmp_path):
    """A mirror serving other bytes (a re-encoded or truncated file) is caught by the sha256 of
    the IDX data inside the gzip: one message, the file removed."""
    import gzip

    from intro_nn import data, loan_data
    from testkit import assert_clean_failure

    site = tmp_path / "site"
    (site / "mnist").mkdir(parents=True)
    for name in data.MNIST_TEST:
        (site / "mnist" / name).write_bytes(gzip.compress(b"not mnist"))
    (site / "loan_data.csv").write_text("a,b\n1,2\n")
    with served_folder(site) as url:
        monkeypatch.setattr(loan_data, "LOAN_URLS", [url + "loan_data.csv"])
        monkeypatch.setattr(loan_data, "LOAN_SHA256", None)
        monkeypatch.setattr(data, "MNIST_MIRRORS", (url + "mnist/",))
        assert_clean_failure(main, ["data", "sample"], capsys, "does not hold MNIST's test data")
    assert not list(Path("data/mnist").glob("*.gz"))


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
