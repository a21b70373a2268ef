"""The import graph of the workspace, read from the source (``ast``, every import, including those
inside functions): no circle anywhere, ``shared`` imports no project, no project imports another."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {"shared": ROOT / "shared" / "src", "testkit": ROOT / "testkit" / "src"} | {
    p.name.replace("-", "_"): p / "src" for p in sorted((ROOT / "projects").iterdir()) if p.is_dir()
}


def modules() -> dict[str, Path]:
    found = {}
    for src in PACKAGES.values():
        for f in src.rglob("*.py"):
            name = ".".join(f.relative_to(src).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = f
    return found


def import_graph() -> dict[str, set[str]]:
    mods = modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for name, path in mods.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            else:
                continue
            graph[name] |= {t for t in targets if t in mods and t != name}
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_import_circle_anywhere():
    assert circles(import_graph()) == []


def test_the_circle_finder_finds_one():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_shared_imports_no_project_and_projects_not_each_other():
    for name, targets in import_graph().items():
        package = name.split(".")[0]
        for target in targets:
            other = target.split(".")[0]
            assert other in (package, "shared"), f"{name} imports {target}"
            assert package == "testkit" or other != "testkit", f"{name} imports {target}"


# shared's runtime dependencies (pyproject.toml) and what each extra adds, per module
RUNTIME = {"torch", "numpy", "tqdm", "pooch", "requests", "shared"}
EXTRAS = {
    "shared.plots": {"matplotlib"},
    "shared.demo": {"gradio"},
    "shared.serve": {"fastapi", "starlette", "uvicorn", "httpx"},
}


def test_shared_modules_import_only_its_runtime_dependencies_at_the_top():
    import sys

    for name, path in modules().items():
        if not name.startswith("shared"):
            continue
        allowed = RUNTIME | EXTRAS.get(name, set()) | set(sys.stdlib_module_names)
        for node in ast.parse(path.read_text()).body:  # module level: what importing it needs
            if isinstance(node, ast.Import):
                tops = {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                tops = {node.module.split(".")[0]}
            else:
                continue
            assert tops <= allowed, f"{name} needs {tops - allowed} at import time"
            for target in (getattr(node, "module", None), *(a.name for a in node.names)):
                extra = EXTRAS.get(str(target))
                assert extra is None or name in EXTRAS or name == target, f"{name} -> {target}"


def test_training_through_shared_loads_no_plotting_demo_or_pytest(tmp_path):
    import subprocess
    import sys

    code = (
        "import sys, shared.training, shared.runs, shared.cli, shared.checkpoint;"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'matplotlib', 'gradio', 'pytest'}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    assert out.stdout.strip() == "[]"


# functions allowed past 60 lines, each with the reason the README's layout section gives: the
# loop, and each project's run, kept whole so that each reads top to bottom in the order it happens
LONG_FUNCTIONS = {
    "shared.training.run_loop",
    "intro_nn.train.train",
    "audio_net.train.train",
    "austen_net.train.train",
    "multi_net.train.train",
}


def test_no_function_is_longer_than_60_lines():
    long = []
    for name, path in modules().items():
        if name.startswith("testkit"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > 60 and f"{name}.{node.name}" not in LONG_FUNCTIONS:
                    long.append(f"{name}.{node.name}: {lines} lines")
    assert long == []


def test_imports_inside_functions_say_why():
    """Imports sit at the top of a module, except one that is optional (an extra) or measurably
    slow, with a comment saying which (on its line, or the line above its block of imports)."""
    unexplained = []
    for name, path in modules().items():
        if name.startswith("testkit"):
            continue
        lines = path.read_text().splitlines()
        for fn in ast.walk(ast.parse(path.read_text())):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            block_ok = False
            for node in ast.walk(fn):
                if not isinstance(node, (ast.Import, ast.ImportFrom)):
                    continue
                line, above = lines[node.lineno - 1], lines[node.lineno - 2].strip()
                starts_block = not above.startswith(("from ", "import "))
                if starts_block:
                    block_ok = "#" in line or above.startswith("#")
                elif "#" in line:
                    block_ok = True
                if not block_ok:
                    unexplained.append(f"{name}:{node.lineno} {line.strip()}")
    assert unexplained == []


def test_every_project_trains_through_shareds_loop():
    """Each project's ``train.py`` calls ``shared.training.fit`` itself, in the order its run
    happens; no project builds a ``CheckpointManager``, runs its own optimizer loop or resumes
    by itself (a ``bench`` may time ``Trainer`` steps: it trains no run)."""
    for project in (ROOT / "projects").iterdir():
        if not project.is_dir():
            continue
        sources = {p.name: p.read_text() for p in (project / "src").rglob("*.py")}
        assert "fit(" in sources["train.py"], f"{project.name}: train.py does not call fit"
        for name, text in sources.items():
            timed = name.endswith("bench.py")  # a bench times steps: it trains no run
            for own in ("CheckpointManager(", "run_loop(", "restore(", *[".backward("][timed:]):
                assert own not in text, f"{project.name}/{name} writes its own loop ({own})"


def test_each_name_means_one_thing_in_a_package():
    """No function or class name is defined in two modules of one package (two meanings, or one
    thing written twice), but a project's ``cli.py`` command, which imports its module's function
    of the same name when it runs (the same thing, reached lazily)."""
    for package, src in PACKAGES.items():
        defined: dict[str, list[str]] = {}
        for path in (src / package).glob("*.py"):
            tree = ast.parse(path.read_text())
            for node in tree.body:
                if not isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                    continue
                delegates = path.name == "cli.py" and any(
                    isinstance(n, ast.ImportFrom) and node.name in {a.name for a in n.names}
                    for n in ast.walk(node)
                )
                if not delegates:
                    defined.setdefault(node.name, []).append(path.name)
        twice = {name: files for name, files in defined.items() if len(files) > 1}
        assert twice == {}, f"{package}: {twice}"


def test_no_module_is_named_after_a_standard_library_module():
    import sys

    clash = [name for name in modules() if name.split(".")[-1] in sys.stdlib_module_names]
    assert clash == []
