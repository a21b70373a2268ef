"""Import probes: which modules a command loads (``--help`` must not import torch)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

TRAINING_ONLY = ("shared.training", "matplotlib.pyplot")


def modules_loaded(module: str, argv: list, cwd: Path) -> set[str]:
    """The modules a fresh interpreter has imported after running ``module.main(argv)`` (which
    must succeed): an inference command must not load the training machinery."""
    import json

    code = (
        "import json, sys\n"
        f"from {module} import main\n"
        f"code = main({[str(a) for a in argv]!r})\n"
        "print(json.dumps(sorted(sys.modules)))\n"
        "sys.exit(code)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, timeout=1800
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return set(json.loads(proc.stdout.strip().splitlines()[-1]))


def help_modules(module: str, argv: list, cwd: Path) -> set[str]:
    """The modules a fresh interpreter has imported after ``module.main(argv)`` printed its help
    (argparse exits 0): ``P --help`` and ``P COMMAND --help`` must not import torch."""
    import json

    code = (
        "import contextlib, io, json, sys\n"
        f"from {module} import main\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        f"    main({[str(a) for a in argv]!r})\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return set(json.loads(proc.stdout.strip().splitlines()[-1]))


def heavy_help_imports(
    module: str, commands: dict, cwd: Path | None = None
) -> dict[str, list[str]]:
    """``--help`` of the program and of every command, each in a fresh interpreter: the heavy
    modules (torch, whose import alone takes seconds, matplotlib, gradio) any of them imported,
    by argv (an empty dict when none did)."""
    heavy = {"torch", "matplotlib", "gradio"}
    found = {}
    for argv in (["--help"], *([name, "--help"] for name in commands)):
        loaded = {m.split(".")[0] for m in help_modules(module, argv, cwd or Path.cwd())}
        if loaded & heavy:
            found[" ".join(argv)] = sorted(loaded & heavy)
    return found
