"""The walkthrough notebook: the committed copy is what its code produced, it teaches (equations,
the loop on the project's own modules, exercises whose solutions assert their outcome, numbers in
the prose that the outputs print), it runs from a clean kernel on a data root holding its data,
and without its data it stops in one sentence."""

from pathlib import Path

import pytest

from testkit import notebooks

PROJECT = Path(__file__).parents[1]


def test_committed_walkthrough_is_current():
    notebooks.check_committed(PROJECT)


def test_walkthrough_teaches_on_the_project_modules():
    notebooks.check_lesson(PROJECT, "intro_nn")


def test_walkthrough_runs_on_its_data(tmp_path):
    root = notebooks.notebook_data_root(tmp_path)
    if root is None:
        pytest.skip(
            "no data: set DL_NOTEBOOK_DATA or DL_TEST_DATA (or ../shared/data beside the checkout)"
        )
    notebooks.check_runs(PROJECT, root, tmp_path)


def test_walkthrough_without_its_data_stops_in_one_sentence(tmp_path):
    notebooks.check_stops_without_data(
        PROJECT, tmp_path, "uv run --package intro-nn intro-nn data sample"
    )
