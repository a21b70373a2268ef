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


def test_drift_counts_numbers_in_words_and_percentages():
    """ "about ten" holds within a quarter of a printed value; a percentage is checked whole."""
    assert notebooks.drifted_numbers(lesson("about ten windows per clip", "11.0 windows")) == []
    drifted = notebooks.drifted_numbers(lesson("about ten windows per clip", "17.0 windows"))
    assert drifted == ["about ten"]
    assert notebooks.drifted_numbers(lesson("36% of such sets", "probability 36%")) == []
    assert notebooks.drifted_numbers(lesson("36% of such sets", "probability 41%")) == ["36%"]
    # time boxes and durations follow the machine; "about one in six" is a proportion
    prose = "(about 5 minutes) about one loan in six, about two bins"
    assert notebooks.drifted_numbers(lesson(prose, "")) == []


def solvable(question: str, stub: str, solution: str, stub_says: str, solution_says: str):
    """A notebook with one exercise: its question, the learner's cell, and its solution."""
    nb = nbformat.v4.new_notebook()

    def code(source, printed):
        cell = nbformat.v4.new_code_cell(source)
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=printed)]
        return cell

    nb.cells = [
        nbformat.v4.new_markdown_cell(question),
        code(stub, stub_says),
        nbformat.v4.new_markdown_cell("### Solution 1: drop it"),
        code(solution, solution_says),
    ]
    return nb


GOOD = dict(
    question="### Try it yourself 1: drop it (about 5 minutes)\n\nPredict: better or worse?\n\n"
    "<details><summary>Hint</summary>lr</details>",
    stub="answer = None\n\nex.check(answer, baseline=b)",
    solution="a = run()\nassert ex.check(a, baseline=b)\nassert not ex.check(b, baseline=b)",
    stub_says="Exercise 1 (drop it): not yet: the answer is still None",
    solution_says="Exercise 1 (drop it): solved.",
)


def test_an_exercise_asks_first_and_its_stub_fails_where_its_solution_passes():
    assert notebooks.exercise_problems(solvable(**GOOD)) == []
    cases = {
        "question": (GOOD["question"].replace(" (about 5 minutes)", ""), "no time box"),
        "stub": ("answer = 0.5\nex.check(answer, baseline=b)", "no cell for the learner"),
        "stub_says": ("Exercise 1 (drop it): solved.", "the untouched stub did not fail"),
        "solution": ("a = run()\nassert ex.check(a, baseline=b)", "the effect removed fails"),
        "solution_says": ("", "did not say 'solved'"),
    }
    for key, (value, problem) in cases.items():
        found = notebooks.exercise_problems(solvable(**{**GOOD, key: value}))
        assert any(problem in p for p in found), (key, found)
    spoiled = GOOD["question"] + "\n\nExpect a drop of 0.1."
    assert any(
        "gives the answer" in p
        for p in notebooks.exercise_problems(solvable(**{**GOOD, "question": spoiled}))
    )
    unfolded = GOOD["question"].replace("<details>", "")
    assert any(
        "folded" in p
        for p in notebooks.exercise_problems(solvable(**{**GOOD, "question": unfolded}))
    )


def test_an_exercise_check_says_not_yet_until_the_effect_shows(capsys):
    def drop(answer, *, baseline):
        return None if baseline - answer > 0.02 else f"a drop of {baseline - answer:.3f}"

    ex = lessons.Exercise(2, "a learning rate of 1", drop, "train_model takes lr")
    assert not ex.check(None, baseline=0.9)
    assert "not yet: the answer is still None" in capsys.readouterr().out
    assert not ex.check(0.89, baseline=0.9)
    said = capsys.readouterr().out
    assert "not yet: a drop of 0.010" in said and "Hint: train_model takes lr" in said
    assert ex.check(0.7, baseline=0.9) and "solved" in capsys.readouterr().out
    assert not ex.check(0.9, baseline=0.9, quiet=True) and capsys.readouterr().out == ""


def test_differs_by_needs_the_margin_on_the_stated_side():
    lower = lessons.differs_by(0.02, "validation accuracy", lower=True)
    assert lower(0.85, baseline=0.9) is None
    assert "0.010 lower" in lower(0.89, baseline=0.9) and lower(0.95, baseline=0.9) is not None
    higher = lessons.differs_by(0.1, "bits/char", lower=False)
    assert higher(2.7, baseline=2.3) is None and higher(2.35, baseline=2.3) is not None
    assert higher(1.9, baseline=2.3) is not None  # lower is not the effect asked for


def test_a_notebook_runs_again_when_anything_its_outputs_follow_changes(tmp_path):
    """The digest of a notebook's inputs follows its code, the sources, the lock and the data."""
    root = tmp_path / "repo"
    project = root / "projects" / "p"
    (project / "src" / "p").mkdir(parents=True)
    (root / "shared" / "src" / "shared").mkdir(parents=True)
    (root / "uv.lock").write_text("lock")
    (project / "src" / "p" / "m.py").write_text("x = 1")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import p")]
    nbformat.write(nb, str(project / "walkthrough.ipynb"))
    data = tmp_path / "data"
    (data / "mnist").mkdir(parents=True)
    (data / "mnist" / "a.gz").write_bytes(b"12")
    path = project / "walkthrough.ipynb"
    first = notebooks.inputs_digest(path, data)
    assert notebooks.inputs_digest(path, data) == first
    changes = [
        lambda: (project / "src" / "p" / "m.py").write_text("x = 2"),
        lambda: (root / "uv.lock").write_text("lock 2"),
        lambda: (data / "mnist" / "a.gz").write_bytes(b"123"),
        lambda: (project / "exercises.py").write_text("checks"),
    ]
    seen = {first}
    for change in changes:
        change()
        digest = notebooks.inputs_digest(path, data)
        assert digest not in seen
        seen.add(digest)


def test_the_training_loop_is_found_in_code_not_comments():
    comment = "# for x in y: optimizer.zero_grad(); loss.backward(); optimizer.step()"
    assert not notebooks.has_training_loop(lesson("", "", code=comment))
    loop = "%matplotlib inline\nfor b in batches:\n    opt.zero_grad()\n    l.backward()\n    opt.step()"
    assert notebooks.has_training_loop(lesson("", "", code=loop))


def test_paths_outside_the_repository_are_found():
    nb = lesson("Run it on `../shared/data/mnist`.", "", code="p = '../../../x'")
    assert notebooks.outside_paths(nb) == ["../../../x'", "`../shared/data/mnist`."]
