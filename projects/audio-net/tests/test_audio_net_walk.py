"""The walk shared/README.md states for ``audio-net train`` (files a reader opens, in order, and the
switches between project and shared) is the one the code takes: traced on a tiny run."""

from audio_net_data import make_learnable_gtzan

from audio_net.cli import main
from testkit.walk import check_walk


def test_shared_readme_counts_the_walk_of_train(tmp_path):
    data = make_learnable_gtzan(tmp_path / "gtzan", per_genre=3, seconds=4.0)
    argv = ["train", "--data-dir", data, "--model", "cnn", "--no-pretrained", "--epochs", "1"]
    argv += ["--batch-size", "8", "--device", "cpu", "--cache-dir", tmp_path / "cache"]
    check_walk(
        "audio-net", lambda: main([str(a) for a in [*argv, "--quiet", "--out", tmp_path / "r"]])
    )
