"""What the walkthrough notebooks share: their data found (or fetched) in the data root, a scratch
folder that does not pile up, readable figures, a one-sentence stop when the data is missing, and
the exercises' checks (``Exercise``: "not yet" and a hint until an answer shows the effect).

A notebook finds its data where the project's CLI puts it (``$DL_DATA_DIR``, else ``<repo>/data``);
what is missing is fetched with the project's own downloader; offline (or with ``$DL_OFFLINE``
set) it stops with ``MissingData``, which IPython shows as its one sentence, not a traceback.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from shared.errors import UserError
from shared.files import cache_root, data_root

FIGURE_DPI = 100  # inline figures and the PNGs the projects' figure functions write


class MissingData(Exception):
    """A notebook's data is absent and could not be fetched. IPython renders an exception through
    its ``_render_traceback_`` when it has one: here the message alone, one sentence."""

    def _render_traceback_(self) -> list[str]:
        return [str(self)]


def find_or_fetch(
    wanted: Sequence[Path], fetch: Callable[[], object], *, what: str, command: str
) -> Path:
    """The data root, once every path of ``wanted`` (relative to it) exists there; ``fetch()``
    is called first when one is missing (the project's downloader). Raises ``MissingData`` naming
    ``command`` when the download cannot happen."""
    root = data_root()
    if all((root / p).exists() for p in wanted):
        return root
    try:
        fetch()
    except UserError as exc:  # DownloadError offline; a refused file
        reason = str(exc).strip().splitlines()[0]
        raise MissingData(
            f"This notebook needs {what} in {root}, and fetching it failed ({reason}): "
            f"run `{command}` where the internet is reachable, or set DL_DATA_DIR to a data root "
            "that holds it."
        ) from None
    missing = [str(p) for p in wanted if not (root / p).exists()]
    if missing:
        raise MissingData(f"This notebook needs {', '.join(missing)} in {root}: run `{command}`.")
    return root


def scratch(project: str) -> Path:
    """An empty folder for the notebook's run folders and figures, under the project's cache in the
    data root (git-ignored). Each run of the notebook empties it first, so it never piles up."""
    folder = cache_root(project) / "walkthrough"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def readable_figures() -> None:
    """Inline figures at ``FIGURE_DPI`` with a little larger text; called by each notebook's
    first cell (matplotlib imported here: only notebooks call it)."""
    import matplotlib.pyplot as plt  # the plots extra; notebooks only

    plt.rcParams.update({"figure.dpi": FIGURE_DPI, "savefig.dpi": FIGURE_DPI, "font.size": 9})


class Exercise:
    """A "Try it yourself" exercise: the notebook asks the question first; the learner's cell runs
    as shipped (its answer still ``None``) and ``check`` prints "not yet" with a hint until the
    answer shows the effect the question is about; the worked solution, at the end of the
    notebook, asserts that ``check`` passes on it and fails on the same computation with the
    effect removed. ``test(answer, **given)`` returns None when the answer shows the effect, else
    what it shows instead (one clause); ``given`` is what the notebook computed for comparison."""

    def __init__(self, number: int, title: str, test: Callable[..., str | None], hint: str):
        self.number, self.title, self.test, self.hint = number, title, test, hint

    def check(self, answer: Any, *, quiet: bool = False, **given: Any) -> bool:
        """True when ``answer`` shows the effect; prints "solved" or "not yet" with the hint."""
        why = "the answer is still None: write your code above" if answer is None else None
        if why is None:
            why = self.test(answer, **given)
        if not quiet:
            if why is None:
                print(f"Exercise {self.number} ({self.title}): solved.")
            else:
                print(f"Exercise {self.number} ({self.title}): not yet: {why}. Hint: {self.hint}")
        return why is None


def differs_by(margin: float, what: str, *, lower: bool) -> Callable[..., str | None]:
    """An ``Exercise`` test for the commonest effect: the answer more than ``margin`` below
    (``lower``) or above the ``baseline`` the notebook computed the usual way."""
    side = "lower" if lower else "higher"

    def test(answer: Any, *, baseline: float) -> str | None:
        gap = baseline - float(answer) if lower else float(answer) - baseline
        if gap > margin:
            return None
        return (
            f"{what} {float(answer):.3f} against {baseline:.3f} ({gap:.3f} {side}); the effect "
            f"is more than {margin} {side}"
        )

    return test
