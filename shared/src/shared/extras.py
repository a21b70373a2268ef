"""Optional dependencies (a package's extras): one message naming the extra that installs them."""

from __future__ import annotations

import importlib.util

from shared.errors import UserError


def require(modules: tuple[str, ...], package: str, extra: str, what: str) -> None:
    """Refuse ``what`` unless every module in ``modules`` can be imported."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise UserError(
            f"{what} needs {', '.join(missing)}: install the {extra} extra "
            f"(uv sync --package {package} --extra {extra})"
        )
