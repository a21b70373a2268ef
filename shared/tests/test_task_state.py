"""Data in arguments, not on ``self``: read from the source (``ast``) of every package, a training
task keeps no state of its own between ``plan`` and ``summary`` (it writes ``self.<attr>`` only in
``__init__``: what ``plan`` finds travels in ``Plan.prepared``), and no caller reads ``task.<attr>``
after handing the task to ``run_training``/``train_into``."""

import ast

from test_import_graph import modules

RUNNERS = {"run_training", "train_into"}


def task_classes(tree: ast.Module) -> list[ast.ClassDef]:
    """Classes of the module that derive from a ``...Task`` (TrainingTask or a project's)."""
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef)
        and any(getattr(b, "id", getattr(b, "attr", "")).endswith("Task") for b in node.bases)
    ]


def writes_to_self(func: ast.FunctionDef) -> list[str]:
    names = []
    for node in ast.walk(func):
        targets = node.targets if isinstance(node, ast.Assign) else []
        if isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        for target in targets:
            for t in ast.walk(target):
                if isinstance(t, ast.Attribute) and getattr(t.value, "id", None) == "self":
                    names.append(t.attr)
    return names


def task_state_written() -> list[str]:
    found = []
    for name, path in modules().items():
        for cls in task_classes(ast.parse(path.read_text())):
            for func in cls.body:
                if isinstance(func, ast.FunctionDef) and func.name != "__init__":
                    found += [
                        f"{name}.{cls.name}.{func.name} sets self.{a}" for a in writes_to_self(func)
                    ]
    return found


def read_after_training(func: ast.FunctionDef) -> list[str]:
    """``x.<attr>`` read after a call ``run_training(x, ...)``/``train_into(x, ...)`` in ``func``
    (by line: a loop's next pass reads a new task, which the check allows)."""
    handed: dict[str, int] = {}
    for node in ast.walk(func):
        if (
            isinstance(node, ast.Call)
            and getattr(node.func, "id", None) in RUNNERS
            and node.args
            and isinstance(node.args[0], ast.Name)
        ):
            handed[node.args[0].id] = max(handed.get(node.args[0].id, 0), node.lineno)
    return [
        f"{func.name} reads {node.value.id}.{node.attr} on line {node.lineno}"
        for node in ast.walk(func)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.lineno > handed.get(node.value.id, 10**9)
    ]


def test_no_task_keeps_state_between_plan_and_summary():
    found = task_state_written()
    assert not found, "\n".join(found)


def test_nothing_reads_a_task_after_training_it():
    found = []
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef):
                found += [f"{name}: {line}" for line in read_after_training(node)]
    assert not found, "\n".join(found)


def test_the_checks_see_what_they_forbid():
    tree = ast.parse(
        "class T(TrainingTask):\n"
        "    def __init__(self): self.k = 1\n"
        "    def plan(self, cfg):\n"
        "        self.data, x = load(), 2\n"
        "        self.n += 1\n"
        "def train(cfg):\n"
        "    task = T()\n"
        "    run, summary = run_training(task, cfg)\n"
        "    return task.data\n"
    )
    (cls,) = task_classes(tree)
    assert writes_to_self(cls.body[0]) == ["k"] and writes_to_self(cls.body[1]) == ["data", "n"]
    assert read_after_training(tree.body[1]) == ["train reads task.data on line 9"]
