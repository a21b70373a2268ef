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
