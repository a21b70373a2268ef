"""The walk shared/README.md states for ``multi-net train`` (files a reader opens, in order, and the
switches between project and shared) is the one the code takes: traced on a tiny run."""

from multi_net_data import plain_clips

from multi_net.cli import main
from testkit.walk import check_walk


def test_shared_readme_counts_the_walk_of_train(tmp_path):
    videos, ann, pairs = plain_clips(tmp_path / "plain", n=24)
    argv = ["train", "--videos", videos, "--annotations", ann, pairs, "--train-split", "all"]
    argv += ["--clip-model", "mn-tiny", "--no-pretrained", "--device", "cpu", "--num-frames", "4"]
    argv += ["--epochs", "1", "--batch-size", "4", "--cache-dir", tmp_path / "cache"]
    check_walk(
        "multi-net", lambda: main([str(a) for a in [*argv, "--quiet", "--out", tmp_path / "r"]])
    )
