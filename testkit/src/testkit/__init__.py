"""Test helpers the packages share: the real-sample fixture, test isolation, CLI, README and
browser checks. A package of its own (a member of the workspace, in every package's ``dev`` group)
so that the runtime ``shared`` package ships no pytest code.

Import the fixtures into a project's ``conftest.py``::

    from testkit import isolated, real_data  # noqa: F401

One module per kind of check: ``fixtures``, ``cli_checks``, ``signals``, ``demos``, ``browser``,
``readme``, ``imports``, ``notebooks`` and ``served``; the names below are the package's API.
"""

from testkit.browser import (
    BROWSER_TIMEOUT_MS,
    browser_page,
    chromium_path,
    expect_timeout,
    offsite_requests,
    screenshot_dir,
    wait_for_images,
)
from testkit.cli_checks import (
    HelpFacts,
    assert_clean_failure,
    assert_modes_follow_umask,
    assert_numeric_flags_checked,
    check_export_folder_refusals,
    cli_help,
    leftovers,
)
from testkit.demos import ServedDemo, check_demo_serves, demo_client, raw_call
from testkit.fixtures import (
    isolated,
    random_pretrained,
    real_data,
    real_data_root,
    session_roots,
)
from testkit.imports import TRAINING_ONLY, heavy_help_imports, help_modules, modules_loaded
from testkit.readme import (
    FENCE,
    LINK,
    ReadmeFacts,
    check_readme_commands,
    check_readme_links,
    package_argv,
    project_readme,
    python_blocks,
    readme_commands,
    run_offline_block,
    run_shell_block,
    section,
    shell_blocks,
)
from testkit.served import served_folder
from testkit.signals import sigterm_then_resume, sigterm_when

__all__ = [
    "served_folder",
    "assert_modes_follow_umask",
    "real_data_root",
    "real_data",
    "session_roots",
    "random_pretrained",
    "isolated",
    "HelpFacts",
    "cli_help",
    "leftovers",
    "assert_clean_failure",
    "check_export_folder_refusals",
    "assert_numeric_flags_checked",
    "sigterm_when",
    "sigterm_then_resume",
    "ServedDemo",
    "raw_call",
    "demo_client",
    "check_demo_serves",
    "chromium_path",
    "BROWSER_TIMEOUT_MS",
    "browser_page",
    "expect_timeout",
    "wait_for_images",
    "offsite_requests",
    "screenshot_dir",
    "FENCE",
    "LINK",
    "shell_blocks",
    "package_argv",
    "readme_commands",
    "check_readme_commands",
    "check_readme_links",
    "section",
    "python_blocks",
    "run_shell_block",
    "run_offline_block",
    "ReadmeFacts",
    "project_readme",
    "TRAINING_ONLY",
    "modules_loaded",
    "help_modules",
    "heavy_help_imports",
]
