"""Walkthrough notebooks: run one (in memory: the executed copy is never written back unless asked),
read what a committed one says about itself, and check that it teaches what it claims.

``tools/notebooks.py refresh`` re-executes a notebook in place and records the digest of its code
cells and of everything its outputs follow from (``inputs_digest``: the code, the project's and
shared's source, the lock file, the data). The projects' tests (``check_*`` below, one call each)
execute each notebook, unless that second digest shows the committed copy is already this code's
run on this data ($DL_NOTEBOOK_RERUN=1 executes it anyway), and check:

- the committed copy is current (digest, execution counts 1, 2, 3, ..., no error, size);
- the lesson's parts: equations in Markdown math, a training loop with ``zero_grad``, ``backward``
  and ``step`` (found in the parsed code, not in a comment), "Try it yourself" exercises (a time
  box, the question without its answer, a folded hint, a stub whose check says "not yet" as
  shipped, a worked solution at the end whose check passes and fails with the effect removed),
  an open question with no asserted answer, links to the project's modules;
- prose that cannot drift: every number the Markdown quotes (outside math and code; integers
  below 100 are counts and sizes) is one the outputs print, rounded as quoted, or a fact the
  notebook lists in its metadata (``walkthrough.facts``: "1.2 million photographs");
- no path outside the repository; without its data (offline) the notebook stops in one sentence.
"""

from __future__ import annotations

import ast
import hashlib
import os
import re
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from shared import files
from shared.files import atomic_path
from testkit.served import free_port

NOTEBOOK = "walkthrough.ipynb"
MAX_BYTES = 3_000_000  # with its outputs: PNG figures at 100 dpi stay well under this
MAX_SECONDS = 180  # each notebook's refresh, on a 2-core CPU: what its introduction promises
PROMISE = "under three minutes"
METADATA_KEY = "walkthrough"  # nb.metadata["walkthrough"]: "code_sha256", "inputs_sha256", "facts"
EXERCISE = re.compile(r"^### Try it yourself (\d+): .+$", re.M)
SOLUTION = re.compile(r"^### Solution (\d+)\b", re.M)
TIME_BOX = re.compile(r"\((?:about )?\d+(?: to \d+)? minutes\)$")
OPEN_QUESTION = "### Think about it"
SAMPLE_FOLDERS = ("loan", "mnist", "austen", "gtzan", "msrvtt")  # the data root's layout

MATH = re.compile(r"\$\$.+?\$\$|\$[^$\n]+\$", re.S)
CODE = re.compile(r"```.*?```|`[^`\n]*`", re.S)
LINK_TARGET = re.compile(r"\]\([^)]*\)")
# a number, its decimals, a percent sign, and a unit letter ("0.1M weights", "2 GB" is apart)
NUMBER = re.compile(
    r"(?<![\w.,/-])(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?(%?)(?:[kKMGB]|[kKMG]B)?(?![\w])"
)


def read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(str(path), as_version=4)


def code_cells(nb: nbformat.NotebookNode) -> list:
    return [cell for cell in nb.cells if cell.cell_type == "code"]


def markdown(nb: nbformat.NotebookNode) -> str:
    return "\n\n".join(cell.source for cell in nb.cells if cell.cell_type == "markdown")


def code_digest(nb: nbformat.NotebookNode) -> str:
    """sha256 of the code cells' sources, in order (markdown edits do not need a re-run)."""
    digest = hashlib.sha256()
    for cell in code_cells(nb):
        digest.update(cell.source.encode())
        digest.update(b"\0")
    return digest.hexdigest()


def recorded_digest(nb: nbformat.NotebookNode) -> str | None:
    return nb.metadata.get(METADATA_KEY, {}).get("code_sha256")


def inputs_digest(path: Path, data_root: Path | None) -> str:
    """sha256 of everything a notebook's outputs follow from: its code cells, its project's source
    and shared's (``src`` trees), the lock file (every package's version), and the data it reads
    (the name and size of each file in the data root's sample folders). Equal digests: running it
    again computes what the committed copy already shows (its seeds fix the rest)."""
    path = Path(path).resolve()
    root = path.parents[2]  # projects/<name>/walkthrough.ipynb
    digest = hashlib.sha256(code_digest(read(path)).encode())
    sources = [
        *sorted((path.parent / "src").rglob("*.py")),
        *sorted((root / "shared" / "src").rglob("*.py")),
    ]
    checks = [path.parent / "exercises.py"] if (path.parent / "exercises.py").is_file() else []
    for file in [*sources, *checks, root / "uv.lock"]:
        digest.update(f"{file.relative_to(root)}\0".encode() + file.read_bytes() + b"\0")
    for name in SAMPLE_FOLDERS if data_root is not None else ():
        folder = Path(data_root) / name
        for dirpath, _, names in sorted(os.walk(folder, followlinks=True)):
            for f in sorted(names):
                rel = Path(dirpath, f).relative_to(data_root)
                digest.update(f"{rel}|{Path(dirpath, f).stat().st_size}\n".encode())
    return digest.hexdigest()


def recorded_inputs(nb: nbformat.NotebookNode) -> str | None:
    return nb.metadata.get(METADATA_KEY, {}).get("inputs_sha256")


def execution_counts(nb: nbformat.NotebookNode) -> list[int | None]:
    return [cell.get("execution_count") for cell in code_cells(nb)]


def image_outputs(nb: nbformat.NotebookNode) -> int:
    return sum(
        "image/png" in out.get("data", {}) for cell in code_cells(nb) for out in cell.outputs
    )


def code_text(nb: nbformat.NotebookNode) -> str:
    return "\n".join(cell.source for cell in code_cells(nb))


def python_source(nb: nbformat.NotebookNode) -> ast.Module:
    """The code cells parsed as one module (IPython's ``%magic`` lines left out)."""
    lines = [ln for ln in code_text(nb).splitlines() if not ln.lstrip().startswith(("%", "!"))]
    return ast.parse("\n".join(lines))


def output_text(nb: nbformat.NotebookNode) -> str:
    parts = []
    for cell in code_cells(nb):
        for out in cell.outputs:
            if out.get("output_type") == "stream":
                parts.append(out.get("text", ""))
            parts.append(out.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


# -- the lesson's parts -----------------------------------------------------------------------


def equations(nb: nbformat.NotebookNode) -> int:
    """Display equations ($$...$$) in the Markdown."""
    return sum(m.group(0).startswith("$$") for m in MATH.finditer(markdown(nb)))


def has_training_loop(nb: nbformat.NotebookNode) -> bool:
    """A ``for`` loop whose body calls ``.zero_grad()``, ``.backward()`` and ``.step()``."""
    for node in ast.walk(python_source(nb)):
        if isinstance(node, ast.For):
            called = {
                n.func.attr
                for n in ast.walk(node)
                if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
            }
            if {"zero_grad", "backward", "step"} <= called:
                return True
    return False


def cell_output(cell) -> str:
    """What a code cell printed (its streams and plain-text results)."""
    parts = [out.get("text", "") for out in cell.get("outputs", []) if "text" in out]
    parts += [out.get("data", {}).get("text/plain", "") for out in cell.get("outputs", [])]
    return "\n".join(parts)


def exercises(nb: nbformat.NotebookNode) -> list[dict]:
    """Each "### Try it yourself N: title (time)" exercise: its Markdown (the question, a folded
    hint), the learner's cell (the first code cell after it that calls ``.check(``), and the code
    cell after the Markdown "### Solution N" (``None`` where missing)."""
    solutions = {}
    for i, cell in enumerate(nb.cells):
        m = SOLUTION.search(cell.source) if cell.cell_type == "markdown" else None
        if m:
            solutions[int(m[1])] = next(
                (c for c in nb.cells[i + 1 :] if c.cell_type == "code"), None
            )
    found = []
    for i, cell in enumerate(nb.cells):
        m = EXERCISE.search(cell.source) if cell.cell_type == "markdown" else None
        if m:
            after = [c for c in nb.cells[i + 1 :] if c.cell_type == "code"]
            stub = next((c for c in after[:3] if ".check(" in c.source), None)
            found.append(
                {
                    "number": int(m[1]),
                    "heading": m[0],
                    "text": cell.source,
                    "stub": stub,
                    "solution": solutions.get(int(m[1])),
                }
            )
    return found


def exercise_problems(nb: nbformat.NotebookNode, *, outputs: bool = True) -> list[str]:
    """What keeps each exercise from being one a learner solves: a time box in its heading, the
    question without its answer ("Expect ..."), a folded hint, a cell for the learner's code that
    runs as shipped (``answer = None``) and whose check says "not yet", a solution apart that
    asserts its check passes and fails with the effect removed, and says "solved" (``outputs``:
    what the cells printed is checked too)."""
    problems = []
    for ex in exercises(nb):
        name = f"exercise {ex['number']}"
        if not TIME_BOX.search(ex["heading"]):
            problems.append(f"{name}: no time box in its heading ({ex['heading']!r})")
        if re.search(r"\bExpect\b", ex["text"]):
            problems.append(f"{name}: its question gives the answer ('Expect ...')")
        if "<details>" not in ex["text"]:
            problems.append(f"{name}: no hint folded in a <details> block")
        stub, solution = ex["stub"], ex["solution"]
        if stub is None or "answer = None" not in stub.source:
            problems.append(f"{name}: no cell for the learner (answer = None, then a .check(...))")
        elif outputs and "not yet" not in cell_output(stub):
            problems.append(f"{name}: the untouched stub did not fail its check ('not yet')")
        if solution is None:
            problems.append(f"{name}: no '### Solution {ex['number']}' with a code cell")
            continue
        tree = ast.parse(solution.source)
        passes = [
            n for n in ast.walk(tree) if isinstance(n, ast.Assert) and ".check(" in ast.unparse(n)
        ]
        if not any(not isinstance(n.test, ast.UnaryOp) for n in passes):
            problems.append(f"{name}: the solution does not assert that its check passes")
        if not any(isinstance(n.test, ast.UnaryOp) for n in passes):
            problems.append(f"{name}: the solution does not assert that the effect removed fails")
        if outputs and "solved" not in cell_output(solution):
            problems.append(f"{name}: the solution's check did not say 'solved'")
    return problems


def asserts(source: str) -> int:
    lines = [ln for ln in source.splitlines() if not ln.lstrip().startswith(("%", "!"))]
    return sum(isinstance(n, ast.Assert) for n in ast.walk(ast.parse("\n".join(lines))))


def quoted_numbers(text: str) -> list[tuple[str, float, int, bool]]:
    """Numbers the prose quotes: (as written, value, decimals, percent), outside math, code and
    link targets; integers below 100 are left out (counts, sizes, section numbers), percentages
    are not."""
    prose = LINK_TARGET.sub("]", CODE.sub(" ", MATH.sub(" ", text)))
    found = []
    for m in NUMBER.finditer(prose):
        whole, frac, pct = m.groups()
        value = float(whole.replace(",", "") + (frac or ""))
        if frac is None and value < 100 and not pct:  # a percentage is a result, never a count
            continue
        found.append((m.group(0), value, len(frac) - 1 if frac else 0, bool(pct)))
    return found


SMALL_WORDS = "three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen"
NUMBER_WORDS = {w: n for n, w in enumerate(SMALL_WORDS.split(), start=3)} | {
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "sixty": 60,
    "seventy": 70,
    "eighty": 80,
    "ninety": 90,
}
APPROXIMATE = re.compile(
    r"\b(?:about|around|roughly|nearly|almost) (\d+(?![.,]\d)|" + "|".join(NUMBER_WORDS) + r")\b"
    r"(?! (?:minutes?|seconds?|hours?|s|ms|points?)\b)",
    re.I,
)
APPROXIMATE_WITHIN = 0.25  # "about ten" holds for printed values from 7.5 to 12.5


def approximations(text: str) -> list[tuple[str, float]]:
    """Quantities the prose gives as "about N" (a whole figure or a word from three up, "about
    ten"), outside math, code and link targets: (as written, value). Durations are left out (they
    follow the machine; the notebook's last cell prints its own), and so are "about one" and
    "about two" (proportions and counts: "about one loan in six")."""
    prose = LINK_TARGET.sub("]", CODE.sub(" ", MATH.sub(" ", text)))
    found = []
    for m in APPROXIMATE.finditer(prose):
        value = float(NUMBER_WORDS.get(m[1].lower(), m[1]))
        if value >= 3:
            found.append((m[0], value))
    return found


def drifted_numbers(nb: nbformat.NotebookNode) -> list[str]:
    """Numbers the Markdown quotes that no output prints (to the quoted precision; "about N",
    in figures or words, within a quarter of it) and that the notebook does not list as a fact:
    a figure typed into the prose that the code no longer makes."""
    printed = [
        float(whole.replace(",", "") + (frac or ""))
        for whole, frac, _ in NUMBER.findall(output_text(nb))
    ]
    facts = {str(f) for f in nb.metadata.get(METADATA_KEY, {}).get("facts", [])}
    drifted = []
    for written, value, decimals, pct in quoted_numbers(markdown(nb)):
        if written in facts or written.rstrip("%") in facts:
            continue
        scales = (1.0, 100.0) if pct else (1.0,)
        if not any(round(p * s, decimals) == value for p in printed for s in scales):
            drifted.append(written)
    for written, value in approximations(markdown(nb)):
        near = any(abs(p - value) <= APPROXIMATE_WITHIN * value for p in printed)
        if not near and written not in facts:
            drifted.append(written)
    return drifted


def outside_paths(nb: nbformat.NotebookNode) -> list[str]:
    """Paths that leave the repository (a notebook sits two folders below its root)."""
    text = markdown(nb) + "\n" + code_text(nb)
    return sorted(set(re.findall(r"(?:\.\./){3,}\S*|\S*shared/data\S*", text)))


# -- running ----------------------------------------------------------------------------------


def sample_data_root(real: Path, into: Path) -> Path:
    """A data root (``DL_DATA_DIR``) whose data folders link to the real samples, read-only, and
    whose caches are written beside them: what a user has after the projects' downloads."""
    into.mkdir(parents=True, exist_ok=True)
    for name in SAMPLE_FOLDERS:
        if (real / name).is_dir() and not (into / name).exists():
            (into / name).symlink_to(real / name, target_is_directory=True)
    return into


def kernel_env(data_root: Path | None = None, *, offline: bool = False) -> dict[str, str]:
    """The kernel's environment: the data root the notebook reads, figures drawn inline."""
    env = dict(os.environ)
    env.pop("MPLBACKEND", None)  # CI exports Agg for scripts; a notebook draws inline
    if data_root is not None:
        env["DL_DATA_DIR"] = str(data_root)
    if offline:
        env["DL_OFFLINE"] = "1"
    return env


def execute(
    path: Path,
    *,
    env: dict[str, str] | None = None,
    timeout: int | None = None,
    until: str | None = None,
    on_cell=None,
    kernel_stderr=None,
):
    """Run every cell in a fresh kernel started in the notebook's folder; an error raises
    ``nbclient.exceptions.CellExecutionError`` naming the cell. Returns the executed copy. No
    time limit per cell by default: a busy machine is slower, not wrong (a cell that took 51 s idle
    took minutes beside two busy loops). ``until``: stop after the first code cell holding it.
    ``on_cell(n, total)``: called as code cell n (from 1) of ``total`` starts. ``kernel_stderr``:
    a file for the kernel process's own stderr (its start-up warnings), else the caller's."""
    nb = read(path)
    if until is not None:
        last = next(
            i for i, c in enumerate(nb.cells) if c.cell_type == "code" and until in c.source
        )
        nb.cells = nb.cells[: last + 1]
    numbers = {
        i: n
        for n, i in enumerate((i for i, c in enumerate(nb.cells) if c.cell_type == "code"), start=1)
    }
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        record_timing=False,
        resources={"metadata": {"path": str(Path(path).parent)}},
    )
    if on_cell is not None:

        def on_cell_start(cell, cell_index: int) -> None:
            if cell_index in numbers:  # nbclient calls it for markdown cells too
                on_cell(numbers[cell_index], len(numbers))

        client.on_cell_start = on_cell_start
    extra = {} if kernel_stderr is None else {"stderr": kernel_stderr}
    client.execute(env=env if env is not None else kernel_env(), **extra)
    return nb


def refresh(path: Path, *, env: dict[str, str] | None = None, timeout: int | None = None, **kw):
    """Execute in place: the outputs, the digest of the code that made them and the digest of
    everything they follow from (``inputs_digest``) are committed (its facts kept)."""
    import time

    start = time.perf_counter()
    nb = execute(path, env=env, timeout=timeout, **kw)
    recorded = nb.metadata.setdefault(METADATA_KEY, {})
    recorded["seconds"] = round(time.perf_counter() - start, 1)  # kernel start to last cell
    recorded["cores"] = os.cpu_count()
    recorded["code_sha256"] = code_digest(nb)
    given = (env or os.environ).get("DL_DATA_DIR")  # else the default one the notebook read
    recorded["inputs_sha256"] = inputs_digest(path, Path(given) if given else files.data_root())
    nb.metadata.pop("widgets", None)
    with atomic_path(Path(path)) as tmp:
        nbformat.write(nb, str(tmp))
    return nb


# -- the checks each project's test calls ---------------------------------------------------


def check_committed(project: Path) -> None:
    """The committed copy is what its code produced, top to bottom, without an error."""
    path = project / NOTEBOOK
    nb = read(path)
    refresh_it = (
        f"refresh it: uv run --package {project.name} python tools/notebooks.py refresh {path}"
    )
    assert recorded_digest(nb) == code_digest(nb), refresh_it
    counts = execution_counts(nb)
    assert counts == list(range(1, len(counts) + 1)), refresh_it  # run top to bottom, once
    assert [o.ename for c in code_cells(nb) for o in c.outputs if "ename" in o] == []
    assert image_outputs(nb) >= 4
    assert path.stat().st_size <= MAX_BYTES
    # the time its introduction promises, as the refresh measured it (on a busy machine a run is
    # slower, not wrong: the limit is on the recorded run, never a test's wall clock)
    recorded = nb.metadata.get(METADATA_KEY, {})
    assert recorded.get("seconds", float("inf")) <= MAX_SECONDS, (recorded, refresh_it)
    intro = " ".join(nb.cells[0].source.split())
    assert PROMISE in intro, f"its introduction does not say '{PROMISE}'"


def check_lesson(project: Path, module: str) -> None:
    """Equations, the loop on the project's modules, exercises that assert, links, no drift."""
    nb = read(project / NOTEBOOK)
    assert f"from {module}." in code_text(nb)
    assert has_training_loop(nb), "no for-loop calling zero_grad(), backward() and step()"
    assert equations(nb) >= 4, f"{equations(nb)} display equations (at least 4)"
    found = exercises(nb)
    assert len(found) >= 3, f"{len(found)} 'Try it yourself' exercises (at least 3)"
    assert exercise_problems(nb) == [], exercise_problems(nb)
    assert OPEN_QUESTION in markdown(nb), f"no open question ('{OPEN_QUESTION}')"
    links = re.findall(r"\]\((src/[^)]+\.py|NOTES\.md)\)", markdown(nb))
    assert any(link.startswith("src/") for link in links) and "NOTES.md" in links
    for link in links:
        assert (project / link).is_file(), f"the link {link} names no file"
    drifted = drifted_numbers(nb)
    assert drifted == [], f"numbers in the prose that no output prints: {drifted}"
    outside = outside_paths(nb)
    assert outside == [], f"paths outside the repository: {outside}"
    readme = (project / "README.md").read_text()
    assert "\nLearn: [walkthrough.ipynb](walkthrough.ipynb)" in readme


def lab_command(project: Path) -> str:
    """The README's command that opens the walkthrough in JupyterLab."""
    from testkit.readme import shell_blocks

    want = f"uv run --package {project.name} --extra lab jupyter lab projects/{project.name}/{NOTEBOOK}"
    lines = [line for b in shell_blocks((project / "README.md").read_text()) for line in b]
    assert want in lines, f"the README has no block with the line: {want}"
    return want


def check_lab_serves(project: Path, tmp: Path) -> None:
    """The README's JupyterLab command, run from the repository root as a user runs it, starts a
    server that serves the walkthrough as a notebook, the lab page that opens it, and a Python
    kernel from the project's environment. Jupyter's own folders go to ``tmp``."""
    import json
    import shlex
    import subprocess
    import threading
    import time
    import urllib.request

    port = free_port()
    token = "walkthrough-test"
    argv = shlex.split(lab_command(project)) + [
        "--no-browser",
        f"--port={port}",
        "--ip=127.0.0.1",
        f"--IdentityProvider.token={token}",
    ]
    if os.geteuid() == 0:  # a container's root (CI): Jupyter refuses root unless told
        argv.append("--allow-root")
    env = {**os.environ, "UV_OFFLINE": "1", "IPYTHONDIR": str(tmp / "ipython")}
    for name in ("CONFIG", "DATA", "RUNTIME"):
        env[f"JUPYTER_{name}_DIR"] = str(tmp / name.lower())
    env["JUPYTERLAB_WORKSPACES_DIR"] = str(tmp / "workspaces")
    env["JUPYTERLAB_SETTINGS_DIR"] = str(tmp / "settings")
    root = project.parents[1]
    proc = subprocess.Popen(
        argv, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines: list[str] = []
    serving = threading.Event()

    def read() -> None:
        for line in proc.stdout:
            lines.append(line)
            if f":{port}/lab" in line:
                serving.set()

    threading.Thread(target=read, daemon=True).start()

    def get(path: str):
        url = f"http://127.0.0.1:{port}{path}{'&' if '?' in path else '?'}token={token}"
        try:
            with urllib.request.urlopen(url) as response:
                return response.status, response.read()
        except OSError as exc:
            raise AssertionError(f"{url}: {exc}\n{''.join(lines)[-3000:]}") from exc

    def answers() -> bool:
        try:
            return get("/api/status")[0] == 200
        except AssertionError:
            return False

    try:
        start = time.monotonic()
        # it prints its URL, then listens: wait for the URL, then for an answer
        while not (serving.wait(0.2) and answers()):
            alive = proc.poll() is None and time.monotonic() - start < 600
            assert alive, f"jupyter lab never served: {''.join(lines)[-3000:]}"
        rel = NOTEBOOK  # the server's root is the notebook's folder
        status, body = get(f"/api/contents/{rel}?content=0")
        assert status == 200 and json.loads(body)["type"] == "notebook", body[:300]
        status, body = get(f"/lab/tree/{rel}")
        assert status == 200 and b"JupyterLab" in body
        status, body = get("/api/kernelspecs")
        specs = json.loads(body)
        assert specs["default"] in specs["kernelspecs"], specs
    finally:
        proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def notebook_data_root(tmp: Path) -> Path | None:
    """The data root a notebook test reads: ``$DL_NOTEBOOK_DATA`` (a data root the CI workflow
    filled with the projects' own ``data sample``/``data download``), else one linking to the
    real samples (``$DL_TEST_DATA``, ``../shared/data``), else None."""
    from testkit.fixtures import real_data_root

    if os.environ.get("DL_NOTEBOOK_DATA"):
        return Path(os.environ["DL_NOTEBOOK_DATA"])
    real = real_data_root()
    return sample_data_root(real, tmp / "data") if real is not None else None


RERUN = "DL_NOTEBOOK_RERUN"  # set: execute the notebook even when its committed run is current


def committed_run_is_current(project: Path, data_root: Path | None) -> bool:
    """Whether the committed copy was refreshed from exactly this code, lock file and data: then
    executing it again would compute the outputs it holds, which ``check_committed`` checks (every
    cell ran, in order, without an error, every solution's assertion held). Any change to the
    notebook, the project's or shared's source, the lock or the data makes it run again."""
    path = project / NOTEBOOK
    nb = read(path)
    recorded = recorded_inputs(nb)
    return recorded is not None and recorded == inputs_digest(path, data_root)


def check_runs(project: Path, root: Path, tmp: Path) -> nbformat.NotebookNode:
    """The notebook runs from a clean kernel on the data root ``root`` (every solution cell's
    assertion holds), writing its scratch under the data root, not in TMPDIR."""
    env = kernel_env(root, offline=True)
    env["TMPDIR"] = str(tmp / "tmp")
    (tmp / "tmp").mkdir()
    nb = execute(project / NOTEBOOK, env=env)
    assert execution_counts(nb)[-1] == len(code_cells(nb))
    assert exercise_problems(nb) == [], exercise_problems(nb)  # stubs fail, solutions pass
    assert image_outputs(nb) >= 4
    assert (root / "cache" / project.name / "walkthrough").is_dir()
    left = [p.name for p in (tmp / "tmp").iterdir() if "walkthrough" in p.name]
    assert left == [], f"the notebook left {left} in TMPDIR"
    return nb


def check_stops_without_data(project: Path, tmp: Path, command: str) -> None:
    """Offline with an empty data root, the notebook stops at its data cell with one sentence
    naming the command that fetches the data: no traceback."""
    try:
        execute(project / NOTEBOOK, env=kernel_env(tmp / "empty", offline=True))
    except CellExecutionError as exc:
        lines = [ln for ln in str(exc).splitlines() if "This notebook needs" in ln]
        assert lines and command in lines[0], str(exc)[-2000:]
        assert "Traceback" not in str(exc) and "File " not in str(exc), str(exc)[-2000:]
        return
    raise AssertionError("the notebook ran to the end without its data")


def check_goes_on_without(project: Path, tmp: Path, until: str, sentence: str) -> None:
    """Offline with an empty data root, the notebook's optional data is missing: the cells up to
    the one holding ``until`` run, and that cell prints ``sentence`` instead of failing."""
    nb = execute(project / NOTEBOOK, env=kernel_env(tmp / "empty", offline=True), until=until)
    assert sentence in output_text(nb), output_text(nb)[-2000:]


def walkthrough_tests(project: Path, module: str, *, stop_command: str | None = None, goes_on=None):
    """The five tests of a project's walkthrough, for its test module to bind to ``test_*`` names:
    committed, lesson, runs on its data, without its data, opened by the README's JupyterLab
    command (one sentence naming
    ``stop_command``; or, with ``goes_on`` = (cell text, sentence), the optional data's cell
    says so and the notebook goes on)."""
    import pytest

    def test_committed_walkthrough_is_current():
        check_committed(project)

    def test_walkthrough_teaches_on_the_project_modules():
        check_lesson(project, module)

    def test_walkthrough_runs_on_its_data(tmp_path):
        root = notebook_data_root(tmp_path)
        if root is None and goes_on is None:
            pytest.skip("no data: set DL_NOTEBOOK_DATA or DL_TEST_DATA (or ../shared/data beside)")
        if committed_run_is_current(project, root) and not os.environ.get(RERUN):
            return  # the committed outputs are this code's run on this data (check_committed)
        check_runs(project, root or tmp_path / "data", tmp_path)

    def test_walkthrough_without_its_data(tmp_path):
        if goes_on is not None:
            check_goes_on_without(project, tmp_path, *goes_on)
        else:
            check_stops_without_data(project, tmp_path, stop_command)

    def test_the_readme_command_opens_the_walkthrough_in_jupyterlab(tmp_path):
        check_lab_serves(project, tmp_path)

    return (
        test_committed_walkthrough_is_current,
        test_walkthrough_teaches_on_the_project_modules,
        test_walkthrough_runs_on_its_data,
        test_walkthrough_without_its_data,
        test_the_readme_command_opens_the_walkthrough_in_jupyterlab,
    )
