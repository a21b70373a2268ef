"""Command options declared as dataclasses: :func:`arg` fields with their help and bounds, the
number rules every flag and demo field obeys, ``RunConfig`` (the flags every training-like
command shares) and :func:`apply_defaults`, the one way a default depends on another flag.

``shared.cli`` turns these dataclasses into argparse subcommands and runs them.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from shared.errors import UserError


def arg(default: Any = dataclasses.MISSING, help: str = "", **kwargs: Any) -> Any:
    """A dataclass field carrying its CLI help text (``default_factory`` for mutable defaults).

    ``required=True`` makes argparse refuse the command without the flag (the field's default,
    usually None, is what tests and code that build the dataclass directly get). ``group`` puts
    the flag under a heading of ``--help``; ``aliases`` are older spellings still accepted (and
    left out of ``--help``). Numbers are checked when parsed: a float must be finite, an int must
    fit in 64 bits, and ``low``/``high`` (inclusive) or ``above`` (exclusive) bound either.
    ``parse`` is the flag's own argparse ``type`` (a value like ``auto`` beside numbers).
    ``const`` lets the flag stand alone, meaning that value; ``negative=("--no-x", value)`` keeps a
    ``--no-x`` spelling (hidden) that sets ``value``.
    """
    metadata = {"help": help}
    keys = (
        "choices",
        "positional",
        "required",
        "group",
        "aliases",
        "low",
        "high",
        "above",
        "parse",
    )
    for key in (*keys, "const", "negative"):
        if key in kwargs:
            metadata[key] = kwargs.pop(key)
    if "default_factory" in kwargs:
        return dataclasses.field(default_factory=kwargs.pop("default_factory"), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata, **kwargs)


SEED_RANGE = {"low": 0, "high": 2**32 - 1}  # what numpy, python and torch all accept as a seed
INT64 = 2**63 - 1


AUTO = "auto"  # --epochs auto: shared.length resolves it


def epochs_flag(text: str) -> int | str:
    """argparse type of ``--epochs``: ``auto`` or a whole number >= 1."""
    if text == AUTO:
        return AUTO
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither 'auto' nor a number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def number_problem(
    value: Any, tp: type, low: Any = None, high: Any = None, above: Any = None
) -> str | None:
    """What is wrong with ``value`` as a ``tp`` (int or float) within the bounds, or None: the one
    rule set for CLI flags and demo fields (NaN, infinities, integers beyond 64 bits, bounds)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "is not a number"
    if tp is int and isinstance(value, float):
        if not math.isfinite(value) or value != int(value):
            return "is not an integer"
        value = int(value)
    if isinstance(value, float) and not math.isfinite(value):
        return "is not a finite number"
    if isinstance(value, int) and not -INT64 - 1 <= value <= INT64:
        return "is too large an integer"
    if (low is not None and value < low) or (high is not None and value > high):
        return f"is outside {'' if low is None else low}..{'' if high is None else high}"
    if above is not None and not value > above:
        return f"must be greater than {above}"
    return None


def checked_number(value: Any, name: str, tp: type = float, **bounds: Any) -> Any:
    """``value`` as a ``tp`` if it passes :func:`number_problem`; else a ``UserError`` naming it."""
    if isinstance(value, str):
        try:
            value = tp(value.strip())
        except ValueError:
            raise UserError(f"{name} needs {'an integer' if tp is int else 'a number'}") from None
    problem = number_problem(value, tp, **bounds)
    if problem:
        raise UserError(f"{name} {problem} ({value!r})")
    return tp(value)


def check_bounds(cfg: Any) -> None:
    """The ``low``/``high``/``above`` bounds of ``cfg``'s fields checked on the values it holds, so
    that a config built in code, or filled in by a preset, keeps the rules its flags keep when
    parsed: one declaration per bound (in ``arg``), two places it is checked."""
    for f in dataclasses.fields(cfg):
        bounds = {k: f.metadata[k] for k in ("low", "high", "above") if k in f.metadata}
        value = getattr(cfg, f.name)
        if bounds and isinstance(value, (int, float)) and not isinstance(value, bool):
            tp = int if isinstance(value, int) else float
            checked_number(value, "--" + f.name.replace("_", "-"), tp, **bounds)


@dataclasses.dataclass
class RunConfig:
    """Flags shared by every command that runs a model and writes a run folder."""

    device: Literal["auto", "cpu", "cuda", "mps"] = arg(
        "auto", "where to run: auto picks cuda, then mps, then cpu"
    )
    seed: int = arg(0, "random seed for python, numpy, torch and data order", **SEED_RANGE)
    out: Path | None = arg(None, "run folder (default: runs/<project>/<YYYYmmdd-HHMMSS>)")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = arg(
        "auto",
        "autocast precision; auto is bf16 on CUDA (fp16 on GPUs without bf16) and fp32 elsewhere",
    )
    compile: Literal["auto", "on", "off"] = arg(
        "off",
        "torch.compile the model: on (also plain --compile), off (also --no-compile), or auto: "
        "always on CUDA, elsewhere where the run is long enough to repay the compile time",
        const="on",
        negative=("--no-compile", "off"),
    )
    resume: str | None = arg(None, "checkpoint path, or 'latest' for the newest run's last.pt")
    quiet: bool = arg(False, "no progress bars or per-step logging")
    force: bool = arg(
        False,
        "replace the run in a used --out folder (without it, a folder that holds a run is "
        "refused unless --resume continues it)",
    )
    data_dir: Path | None = arg(None, "data root (default: $DL_DATA_DIR, else <repo>/data)")
    tensorboard: bool = arg(
        False,
        "also write the metrics as TensorBoard event files into <run>/tensorboard (needs the "
        "tensorboard package: uv run --with tensorboard ...)",
    )

    def compiles(self, device: Any, pays_off: bool = False) -> bool:
        """Whether ``--compile`` asks for ``torch.compile`` on ``device``: on; or auto on CUDA, or
        elsewhere where the run ``pays_off`` (long enough to repay the compile time)."""
        if self.compile == "auto":
            return device.type == "cuda" or pays_off
        return self.compile == "on"


@dataclasses.dataclass
class DataCommandConfig:
    """``<project> data download|check``: fetch a project's data, or check that it is there. A
    project whose data command does more subclasses it (another ``action``, more flags)."""

    action: Literal["download", "check", "sample"] = arg(
        "download",
        "download the data, check that it is there, or get a small sample to start from "
        "(sample: a few MB, downloaded where the data's licence allows, generated otherwise, into "
        "the data root)",
        positional=True,
    )
    data_dir: Path | None = arg(None, "data root (default: $DL_DATA_DIR, else <repo>/data)")
    quiet: bool = arg(False, "no progress bars")


@dataclasses.dataclass
class DemoOptions:
    checkpoint: Path | None = arg(
        None, "checkpoint to serve (default: the newest run of this project)", group="demo"
    )
    run: Path | None = arg(
        None, "run folder to serve (default: the newest under the runs folder)", group="demo"
    )
    host: str = arg(
        "127.0.0.1", "address to listen on (0.0.0.0 opens it to the network)", group="demo"
    )
    port: int = arg(7860, "port to serve on (0: any free port)", group="demo")
    device: Literal["auto", "cpu", "cuda", "mps"] = arg("auto", "where to run the model")
    debug: bool = arg(
        False,
        "print the traceback of every refused input (default: one warning line)",
        group="demo",
    )

    def __post_init__(self) -> None:  # checked when the flags are parsed, before any work
        if not 0 <= self.port <= 65535:
            raise UserError(f"--port {self.port}: use 0..65535")
        if self.checkpoint is not None and self.run is not None:
            raise UserError("give --checkpoint or --run, not both")


def apply_defaults(cfg: Any, values: dict[str, Any], given: Iterable[str] | None) -> None:
    """Give ``cfg``'s fields that the user did not give the ``values`` that depend on another
    flag (a preset's settings, the epochs of the chosen model): the one way such a default is
    expressed, called from the config's ``__post_init__``.

    ``given`` is the set of flags typed on the command line (``shared.cli`` hands it to the
    config as its ``given`` init-only field); a typed flag wins, even at the value it would have
    had. ``None`` (a config built in code) counts a field at its declared default as not given."""
    typed = None if given is None else frozenset(given)
    defaults = {
        f.name: f.default if f.default is not dataclasses.MISSING else None
        for f in dataclasses.fields(cfg)
    }
    for name, value in values.items():
        unset = name not in typed if typed is not None else getattr(cfg, name) == defaults[name]
        if unset:
            setattr(cfg, name, value)
