import os
from pathlib import Path

import pytest


def real_data_root() -> Path | None:
    env = os.environ.get("DL_TEST_DATA")
    candidates = [Path(env)] if env else []
    candidates.append(Path(__file__).resolve().parents[3] / ".." / "shared" / "data")
    for c in candidates:
        if c.is_dir():
            return c.resolve()
    return None


@pytest.fixture()
def real_data() -> Path:
    root = real_data_root()
    if root is None:
        pytest.skip(
            "real samples not found: set DL_TEST_DATA or place ../shared/data beside the checkout"
        )
    return root


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Every test runs in its own folder with its own data root: nothing lands in the checkout."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DL_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
