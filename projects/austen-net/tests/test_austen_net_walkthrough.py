"""The walkthrough notebook (testkit.notebooks): the committed copy is what its code produced, it
teaches (equations, the loop on the project's modules, exercises whose solutions assert, numbers in
the prose that the outputs print), it runs on a data root holding its data, and without its data
it stops in one sentence naming the command to run."""

from pathlib import Path

from testkit.notebooks import walkthrough_tests

(
    test_committed_walkthrough_is_current,
    test_walkthrough_teaches_on_the_project_modules,
    test_walkthrough_runs_on_its_data,
    test_walkthrough_without_its_data,
    test_the_readme_command_opens_the_walkthrough_in_jupyterlab,
) = walkthrough_tests(
    Path(__file__).parents[1],
    "austen_net",
    stop_command="uv run --package austen-net austen-net data sample",
)


def test_the_walkthrough_reads_the_novels_data_sample_fetches():
    """What the committed notebook says it read is what `austen-net data sample` gives a learner:
    its two novels, whatever else the data root held when the notebook ran."""
    from austen_net.corpus import SAMPLE_WORKS, WORKS
    from testkit.notebooks import NOTEBOOK, output_text, read

    printed = output_text(read(Path(__file__).parents[1] / NOTEBOOK))
    assert f"{len(SAMPLE_WORKS)} novels: train" in printed
    for work_id, (title, _) in WORKS.items():
        assert (title in printed) == (work_id in SAMPLE_WORKS), title
