"""The walk shared/README.md states for ``intro-nn train`` (files a reader opens, in order, and the
switches between project and shared) is the one the code takes: traced on a tiny run."""

from intro_nn.cli import main
from testkit.walk import check_walk


def test_shared_readme_counts_the_walk_of_train(digit_folder, tmp_path):
    argv = ["train", "mnist", "--data-dir", digit_folder, "--epochs", "1", "--batch-size", "32"]
    argv += ["--no-sklearn", "--device", "cpu", "--quiet", "--out", tmp_path / "r"]
    check_walk("intro-nn", lambda: main([str(a) for a in argv]))
