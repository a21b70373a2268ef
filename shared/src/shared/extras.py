"""Optional dependencies (a package's extras): one message naming the extra that installs them."""

from __future__ import annotations

import importlib.util

from shared.errors import UserError


def importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a dotted name whose parent package is missing
        return False


def require(modules: tuple[str, ...], package: str, extra: str, what: str) -> None:
    """Refuse ``what`` unless every module in ``modules`` can be imported."""
    missing = [m for m in modules if not importable(m)]
    if missing:
        how = (
            f"uv sync --package {package} --extra {extra}"
            if package != "shared"
            else f"uv run --with {' --with '.join(missing)} ..., or pip install {' '.join(missing)}"
        )
        raise UserError(f"{what} needs {', '.join(missing)}: install the {extra} extra ({how})")
