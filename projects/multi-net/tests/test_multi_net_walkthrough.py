"""The walkthrough notebook: the committed copy is what its code produced, it teaches (equations,
the loop on the project's own modules, exercises whose solutions assert their outcome, numbers in
the prose that the outputs print), it runs from a clean kernel on a data root holding its data,
and without its data it says so and goes on (it generates its own)."""

from pathlib import Path

from testkit import notebooks

PROJECT = Path(__file__).parents[1]


def test_committed_walkthrough_is_current():
    notebooks.check_committed(PROJECT)


def test_walkthrough_teaches_on_the_project_modules():
    notebooks.check_lesson(PROJECT, "multi_net")


def test_walkthrough_runs_on_its_data(tmp_path):
    root = notebooks.notebook_data_root(tmp_path) or tmp_path / "data"
    notebooks.check_runs(PROJECT, root, tmp_path)


def test_walkthrough_without_the_msrvtt_clip_says_so_and_goes_on(tmp_path):
    notebooks.check_goes_on_without(PROJECT, tmp_path, "msrvtt", "No MSR-VTT clip at")
