"""The walkthrough notebook: the committed copy is what its code produced, it teaches the loop on
the project's own modules, and it runs from a clean kernel on the real samples."""

from pathlib import Path

from testkit import notebooks

PROJECT = Path(__file__).parents[1]
NOTEBOOK = PROJECT / notebooks.NOTEBOOK


def test_committed_walkthrough_is_current():
    nb = notebooks.read(NOTEBOOK)
    refresh = f"refresh it: uv run --package audio-net python tools/notebooks.py refresh {NOTEBOOK}"
    assert notebooks.recorded_digest(nb) == notebooks.code_digest(nb), refresh
    counts = notebooks.execution_counts(nb)
    assert counts == list(range(1, len(counts) + 1)), refresh  # run top to bottom, once
    assert [o.ename for c in notebooks.code_cells(nb) for o in c.outputs if "ename" in o] == []
    assert notebooks.image_outputs(nb) >= 4
    assert NOTEBOOK.stat().st_size <= notebooks.MAX_BYTES


def test_walkthrough_teaches_the_loop_on_the_project_modules():
    code = notebooks.code_text(notebooks.read(NOTEBOOK))
    assert "from audio_net." in code
    assert "loss.backward()" in code and "optimizer.step()" in code
    assert "optimizer.zero_grad()" in code
    readme = (PROJECT / "README.md").read_text()
    assert "\nLearn: [walkthrough.ipynb](walkthrough.ipynb)" in readme


def test_walkthrough_runs_on_the_real_samples(real_data):
    nb = notebooks.execute(NOTEBOOK)  # raises, naming the cell, if any cell fails
    assert notebooks.execution_counts(nb)[-1] == len(notebooks.code_cells(nb))
    assert notebooks.image_outputs(nb) >= 4
