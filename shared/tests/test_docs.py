"""The front page and the docs as a reader uses them: sizes, links, the quick start being what CI
runs, and docs/performance.md being exactly what its records say."""

import re
import subprocess
import sys
import tomllib
from pathlib import Path

from testkit import check_readme_links, shell_blocks

ROOT = Path(__file__).resolve().parents[2]
PROJECTS = ("intro-nn", "audio-net", "austen-net", "multi-net")


def test_front_page_is_short_and_its_links_exist():
    readme = ROOT / "README.md"
    assert len(readme.read_bytes()) <= 10 * 1024
    assert check_readme_links(readme) >= 10
    for page in [ROOT / "shared" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        check_readme_links(page)


def test_quick_start_is_what_ci_runs():
    """The two commands, and the per-package test command that .ci/run runs for each job."""
    readme = (ROOT / "README.md").read_text()
    quick = shell_blocks(readme)[0]
    assert quick[0].startswith("uv run --package intro-nn intro-nn train mnist")
    assert quick[1].startswith("bash .ci/run")
    ci = (ROOT / ".ci" / "run").read_text()
    assert 'uv run --locked --package "$pkg" pytest "$dir"' in ci
    pages = {"shared": ROOT / "shared" / "README.md"} | {
        p: ROOT / "projects" / p / "README.md" for p in PROJECTS
    }
    test_commands = [line for block in shell_blocks(readme) for line in block if "pytest" in line]
    for pkg, page in pages.items():
        folder = "shared" if pkg == "shared" else f"projects/{pkg}"
        assert f"uv run --package {pkg} pytest {folder}" in page.read_text(), page
    for line in test_commands:  # the front page's example is one of the jobs, spelled as CI does
        m = re.fullmatch(r"uv run --package (\S+) pytest (\S+)", line.strip())
        assert m and m.group(1) in PROJECTS and m.group(2) == f"projects/{m.group(1)}", line


def test_every_package_declares_its_readme():
    for folder in [ROOT / "shared", *(ROOT / "projects" / p for p in PROJECTS)]:
        meta = tomllib.loads((folder / "pyproject.toml").read_text())["project"]
        assert meta.get("readme") == "README.md" and (folder / "README.md").is_file(), folder


def test_performance_page_is_generated_from_the_records():
    tool = ROOT / "tools" / "performance_doc.py"
    proc = subprocess.run([sys.executable, str(tool), "--check"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_every_shared_module_is_listed_in_the_readme_and_the_package_docstring():
    import shared

    package = Path(shared.__file__).parent
    readme = (package.parents[1] / "README.md").read_text()
    modules = sorted(p.stem for p in package.glob("*.py") if p.stem != "__init__")
    assert [m for m in modules if f"`{m}`" not in readme] == []
    assert [m for m in modules if f"``{m}``" not in shared.__doc__] == []
