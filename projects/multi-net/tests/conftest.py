import contextlib
import io
import json
from pathlib import Path

import pytest
from multi_net_data import plain_clips

from multi_net.cli import main
from testkit import isolated, real_data, session_roots  # noqa: F401  (fixtures)

TINY = ["--clip-model", "mn-tiny", "--no-pretrained", "--device", "cpu", "--quiet"]


@pytest.fixture(scope="module")
def indexed(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    videos, ann, pairs = plain_clips(root / "plain", n=24)
    cache = ["--cache-dir", str(root / "cache")]
    run = root / "runs" / "multi-net" / "20260101-000000"
    argv = ["train", "--videos", str(videos), "--annotations", str(ann), str(pairs), *cache]
    argv += [*TINY, "--num-frames", "4", "--epochs", "1", "--batch-size", "4", "--out", str(run)]
    assert main([*argv, "--train-split", "all"]) == 0
    argv = ["index", "--checkpoint", str(run / "checkpoints" / "best.pt"), "--videos", str(videos)]
    with pytest.MonkeyPatch.context() as mp:  # no --out: the index goes under the runs root
        mp.setenv("DL_RUNS_DIR", str(root / "runs"))
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            assert main([*argv, "--annotations", str(ann), *cache, "--quiet"]) == 0
    index = Path(json.loads(printed.getvalue().strip().splitlines()[-1])["index"])
    assert index.parent == root / "runs" / "multi-net" / "indexes"
    return root, run, index
