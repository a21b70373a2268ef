"""What the walkthrough notebooks rely on: their data found or fetched with a one-sentence stop,
``$DL_OFFLINE``, a scratch folder that does not pile up, and the checks that keep a lesson honest
(numbers in the prose that the outputs print, exercises that assert, a loop found in the code)."""

import nbformat
import pytest

from shared import download, lessons
from shared.download import DownloadError
from testkit import notebooks


def test_missing_data_renders_as_its_one_sentence():
    exc = lessons.MissingData("This notebook needs X: run `y`.")
    assert exc._render_traceback_() == ["This notebook needs X: run `y`."]


def test_find_or_fetch_uses_what_is_there_and_fetches_what_is_not(tmp_path, monkeypatch):
    monkeypatch.setenv("DL_DATA_DIR", str(tmp_path))
    (tmp_path / "set").mkdir()
    calls = []
    assert (
        lessons.find_or_fetch(["set"], lambda: calls.append(1), what="w", command="c") == tmp_path
    )
    assert calls == []

    def fetch():
        (tmp_path / "other").mkdir()

    assert lessons.find_or_fetch(["other"], fetch, what="w", command="c") == tmp_path


def test_find_or_fetch_offline_stops_naming_the_command(tmp_path, monkeypatch):
    monkeypatch.setenv("DL_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("DL_OFFLINE", "1")

    def fetch():
        download.fetch("https://example.invalid/x.csv", tmp_path / "x.csv")

    with pytest.raises(lessons.MissingData) as caught:
        lessons.find_or_fetch(["x.csv"], fetch, what="the table", command="p data sample")
    message = str(caught.value)
    assert "the table" in message and "`p data sample`" in message and "DL_OFFLINE" in message
    assert "\n" not in message
    assert not (tmp_path / "x.csv").exists()

    with pytest.raises(lessons.MissingData, match="needs gone"):  # fetched, yet still absent
        lessons.find_or_fetch(["gone"], lambda: None, what="w", command="c")


def test_dl_offline_refuses_before_the_network(tmp_path, monkeypatch):
    monkeypatch.setenv("DL_OFFLINE", "1")
    with pytest.raises(DownloadError, match=r"\$DL_OFFLINE is set"):
        download.fetch("https://example.invalid/a.bin", tmp_path / "sub" / "a.bin")
    assert not (tmp_path / "sub").exists()  # no folder left behind
    monkeypatch.setenv("DL_OFFLINE", "0")
    assert not download.offline()


def test_scratch_is_emptied_on_each_run(tmp_path, monkeypatch):
    monkeypatch.setenv("DL_DATA_DIR", str(tmp_path))
    folder = lessons.scratch("demo-project")
    assert folder == tmp_path / "cache" / "demo-project" / "walkthrough"
    (folder / "old.png").write_bytes(b"x")
    assert list(lessons.scratch("demo-project").iterdir()) == []


def lesson(markdown: str, printed: str, code: str = "x = 1", facts=()) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(code)
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=printed)]
    nb.cells = [nbformat.v4.new_markdown_cell(markdown), cell]
    nb.metadata[notebooks.METADATA_KEY] = {"facts": list(facts)}
    return nb


def test_a_number_typed_into_the_prose_must_be_printed():
    assert notebooks.drifted_numbers(lesson("It has 61,692 weights.", "61692 params")) == []
    assert notebooks.drifted_numbers(lesson("About 0.84 of them.", "acc 0.8399")) == []
    assert notebooks.drifted_numbers(lesson("84% are repaid.", "repaid 0.84")) == []
    assert notebooks.drifted_numbers(lesson("It has 0.1M weights.", "61,692")) == ["0.1M"]
    assert notebooks.drifted_numbers(lesson("216,250 weights", "204,042")) == ["216,250"]
    # counts below 100, math, code and facts listed in the metadata are not quoted results
    prose = "3 blocks; $\\ln 10 = 2.30$; `n_fft = 2048`; 1.2 million photographs"
    assert notebooks.drifted_numbers(lesson(prose, "", facts=["1.2"])) == []


def test_exercises_need_a_solution_that_asserts():
    nb = lesson("### Try it yourself 1: drop it\nExpect worse.", "", code="# assert in a comment")
    [(text, solution)] = notebooks.exercises(nb)
    assert text.startswith("### Try it yourself 1") and notebooks.asserts(solution) == 0
    nb.cells[1].source = "drop = 0.1\nassert drop > 0.02"
    assert notebooks.asserts(notebooks.exercises(nb)[0][1]) == 1


def test_the_training_loop_is_found_in_code_not_comments():
    comment = "# for x in y: optimizer.zero_grad(); loss.backward(); optimizer.step()"
    assert not notebooks.has_training_loop(lesson("", "", code=comment))
    loop = "%matplotlib inline\nfor b in batches:\n    opt.zero_grad()\n    l.backward()\n    opt.step()"
    assert notebooks.has_training_loop(lesson("", "", code=loop))


def test_paths_outside_the_repository_are_found():
    nb = lesson("Run it on `../shared/data/mnist`.", "", code="p = '../../../x'")
    assert notebooks.outside_paths(nb) == ["../../../x'", "`../shared/data/mnist`."]
