import pytest
from audio_net_data import make_learnable_gtzan

from audio_net.cli import main
from testkit import isolated, real_data, session_roots  # noqa: F401  (fixtures)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    data = make_learnable_gtzan(root / "gtzan", per_genre=3, seconds=4.0)
    run = root / "runs" / "audio-net" / "20260101-000000"
    argv = ["train", "--data-dir", data, "--no-pretrained", "--epochs", "2", "--device", "cpu"]
    argv += ["--batch-size", "16", "--cache-dir", root / "cache", "--out", run, "--quiet"]
    assert main([str(a) for a in argv]) == 0
    return root, run
