"""The walk shared/README.md states for ``austen-net train`` (files a reader opens, in order, and the
switches between project and shared) is the one the code takes: traced on a tiny run."""

from austen_net.cli import main
from testkit.walk import check_walk


def test_shared_readme_walks_train_as_the_code_runs(corpus, tmp_path):
    argv = ["train", "--preset", "tiny", "--tokenizer", "char", "--batch-size", "4"]
    argv += ["--corpus-dir", corpus, "--max-steps", "2", "--device", "cpu"]
    check_walk(
        "austen-net", lambda: main([str(a) for a in [*argv, "--quiet", "--out", tmp_path / "r"]])
    )
