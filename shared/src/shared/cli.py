"""The command line: a command's options declared as a dataclass, parsed into one, and the
process around the command.

- Options: every field of a command's dataclass is a ``--flag`` with its default and its
  :func:`arg` help, bounds and rules (a preset a choice sets, a flag that needs another); a typed
  flag always wins over a preset. ``RunConfig`` holds the flags every training-like command
  shares and remembers which flags were ``typed``: a project whose defaults follow other flags
  in ways a table cannot say gives them in its config's ``settle()``, the first step of its
  ``train``. Numbers are checked when parsed, and the declared rules again on every config, a
  config built in code included.
- The process: ``run_cli`` refuses an unwritable ``--out`` before any work, joins a torchrun group
  before anything picks a run folder, and turns what a user can cause (``UserError``, ``OSError``
  such as a full disk or a read-only folder, Ctrl-C, SIGTERM) into one line on stderr and an exit
  status, never a traceback. SIGTERM (from ``timeout``, ``docker stop``, a scheduler) is handled
  like Ctrl-C: outside a training loop it raises ``Terminated`` at once; inside one
  (``stop_point``) it only sets a flag, which the loop reads after each optimizer step (under
  torchrun every rank reads every other's, so all stop at the same step), then saves ``last.pt``.

Nothing here imports torch: ``--help`` and a refused flag answer in a fraction of a second.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import dataclasses
import functools
import inspect
import logging
import math
import os
import signal
import sys
import threading
import types
import typing
from collections.abc import Callable, Iterator, Sequence
from dataclasses import InitVar
from pathlib import Path
from typing import Any, Literal

from shared.errors import (
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    EXIT_USER_ERROR,
    Terminated,
    UserError,
)
from shared.files import cache_root

# --- options ---------------------------------------------------------------------------------


BOUNDS = ("low", "high", "above", "off")  # a number's own bounds, checked as it is parsed
RULES = ("sets", "needs", "below", "items")  # rules across flags, checked on every config
ARG_KEYS = ("choices", "positional", "required", "group", "aliases", "parse", "const", "negative")
ARG_KEYS += BOUNDS + RULES


def arg(default: Any = dataclasses.MISSING, help: str = "", **kwargs: Any) -> Any:
    """A dataclass field carrying its CLI help text (``default_factory`` for mutable defaults).

    ``required=True`` makes argparse refuse the command without the flag (the field's default,
    usually None, is what tests and code that build the dataclass directly get). ``group`` puts
    the flag under a heading of ``--help``; ``aliases`` are older spellings still accepted (and
    left out of ``--help``). Numbers are checked when parsed: a float must be finite, an int must
    fit in 64 bits, and ``low``/``high`` (inclusive) or ``above`` (exclusive) bound either;
    ``off`` is one value allowed outside them, meaning "off" (``--cv 0``: no folds, else >= 2).
    ``parse`` is the flag's own argparse ``type`` (a value like ``auto`` beside numbers).
    ``const`` lets the flag stand alone, meaning that value; ``negative=("--no-x", value)`` keeps a
    ``--no-x`` spelling (hidden) that sets ``value``. Rules across flags, checked on every config
    (:func:`check_bounds`): ``sets={choice: {field: value}}`` (a preset: choosing ``choice`` gives
    those fields those values where no flag gives them), ``needs={field: value}`` (the flag, given
    a value other than its default, is refused unless ``field`` holds ``value``), ``below=field``
    (a number less than that field's, where both are numbers) and ``items=(fewest, most)`` (how
    many values a list flag takes; ``most`` None: no limit).
    """
    metadata = {"help": help, **{k: kwargs.pop(k) for k in ARG_KEYS if k in kwargs}}
    if "default_factory" in kwargs:
        return dataclasses.field(default_factory=kwargs.pop("default_factory"), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata, **kwargs)


def cache_flag(project: str, what: str) -> Any:
    """``--cache-dir``: where ``project`` keeps ``what``; by default ``cache/<project>`` under the
    default data root, resolved when the flags are read (a command reads a path, not a rule)."""
    return arg(
        default_factory=functools.partial(cache_root, project),
        help=f"{what}: cache/{project} under $DL_DATA_DIR (else <repo>/data), never inside "
        "--data-dir, which may be your own folder",
    )


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
    value: Any, tp: type, low: Any = None, high: Any = None, above: Any = None, off: Any = None
) -> str | None:
    """What is wrong with ``value`` as a ``tp`` (int or float) within the bounds (``off`` allowed
    outside them), or None: the one rule set for CLI flags and demo fields (NaN, infinities,
    integers beyond 64 bits, bounds)."""
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
    if off is not None and value == off:
        return None
    also = "" if off is None else f" (or {off}: off)"
    if (low is not None and value < low) or (high is not None and value > high):
        return f"is outside {'' if low is None else low}..{'' if high is None else high}{also}"
    if above is not None and not value > above:
        return f"must be greater than {above}{also}"
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


def checked_as(cls: type, name: str, value: Any, label: str) -> Any:
    """``value`` under the bounds field ``name`` of dataclass ``cls`` declares in :func:`arg`: a
    page's or an API's input kept to its flag's rule (``label`` names it in the message)."""
    (f,) = [f for f in dataclasses.fields(cls) if f.name == name]
    tp, _ = _unwrap_optional(typing.get_type_hints(cls)[name])
    return checked_number(value, label, tp, **{k: f.metadata[k] for k in BOUNDS if k in f.metadata})


def check_bounds(cfg: Any) -> None:
    """The rules ``cfg``'s fields declare in :func:`arg` (``low``/``high``/``above``, ``items``,
    ``needs``) checked on the values it holds, so that a config built in code, or filled in by a
    preset, keeps the rules its flags keep when parsed: one declaration per rule."""
    for f in dataclasses.fields(cfg):
        bounds = {k: f.metadata[k] for k in BOUNDS if k in f.metadata}
        value, flag = getattr(cfg, f.name), "--" + f.name.replace("_", "-")
        for item in value if isinstance(value, (list, tuple)) else [value]:  # (each of a list's)
            if bounds and isinstance(item, (int, float)) and not isinstance(item, bool):
                tp = int if isinstance(item, int) else float
                checked_number(item, flag, tp, **bounds)
        fewest, most = f.metadata.get("items", (0, None))
        if "items" in f.metadata and not fewest <= len(value) <= (most or math.inf):
            count = str(fewest) if fewest == most else f"at least {fewest}"
            noun = "value" if fewest == 1 else "values"
            raise UserError(f"{flag} takes {count} {noun} ({len(value)} given)")
        check_below(cfg, f, value, flag)
        for other, wanted in f.metadata.get("needs", {}).items():
            if value != field_default(f) and getattr(cfg, other) != wanted:
                name = "--" + other.replace("_", "-")
                raise UserError(f"{flag} is for {name} {wanted}: add {name} {wanted}")


def check_below(cfg: Any, f: dataclasses.Field, value: Any, flag: str) -> None:
    """``below=other``: ``value`` under ``other``'s value, where both are numbers (``--epochs``
    may be ``auto``: nothing to compare) and ``value`` is not the field's ``off``."""
    other = f.metadata.get("below")
    limit = getattr(cfg, other) if other else None
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (value, limit))
    if numbers and value >= limit and value != f.metadata.get("off"):
        raise UserError(f"{flag} must be below --{other.replace('_', '-')} ({value} >= {limit})")


def field_default(f: dataclasses.Field) -> Any:
    """What a dataclass field holds when nothing sets it."""
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


def apply_presets(cfg: Any, given: frozenset[str]) -> None:
    """The values a chosen ``sets`` preset gives, on the fields no flag gives (``given``)."""
    for f in (f for f in dataclasses.fields(cfg) if "sets" in f.metadata):
        for name, value in f.metadata["sets"].get(getattr(cfg, f.name), {}).items():
            if name not in given:
                setattr(cfg, name, value)


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

    given: InitVar[frozenset[str] | None] = None  # the flags typed (``run_cli`` fills it)

    def __post_init__(self, given: frozenset[str] | None) -> None:
        # the flags typed (built in code: the fields away from their defaults), which presets
        # and a project's ``settle()`` (its ``train``'s first step) leave as they are
        self.typed = given if given is not None else changed_from_defaults(self)
        apply_presets(self, self.typed)
        check_bounds(self)  # the rules every flag declares, on what presets filled in too


def changed_from_defaults(cfg: Any) -> frozenset[str]:
    """The fields of ``cfg`` whose value differs from the default it declares."""
    return frozenset(
        f.name for f in dataclasses.fields(cfg) if getattr(cfg, f.name) != field_default(f)
    )


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
class ServerOptions:
    """What serves a trained model, a page (``DemoOptions``) or an API (``ServeOptions``): which
    model, on which address, on which device."""

    checkpoint: Path | None = arg(
        None, "checkpoint to serve (default: the newest run of this project)", group="server"
    )
    run: Path | None = arg(
        None, "run folder to serve (default: the newest under the runs folder)", group="server"
    )
    host: str = arg(
        "127.0.0.1", "address to listen on (0.0.0.0 opens it to the network)", group="server"
    )
    device: Literal["auto", "cpu", "cuda", "mps"] = arg("auto", "where to run the model")

    def __post_init__(self) -> None:  # checked when the flags are parsed, before any work
        check_bounds(self)
        if self.checkpoint is not None and self.run is not None:
            raise UserError("give --checkpoint or --run, not both")


@dataclasses.dataclass
class DemoOptions(ServerOptions):
    """``<project> demo``: the model in a local web page (``shared.demo``)."""

    port: int = arg(7860, "port to serve on (0: any free port)", group="server", low=0, high=65535)
    debug: bool = arg(
        False,
        "print the traceback of every refused input (default: one warning line)",
        group="server",
    )


@dataclasses.dataclass
class ServeOptions(ServerOptions):
    """``<project> serve``: the model over HTTP for programs (``shared.serve``)."""

    port: int = arg(8000, "port to serve on (0: any free port)", group="server", low=0, high=65535)
    max_batch: int = arg(
        8, "requests answered together in one forward pass at most", group="server", low=1, high=256
    )
    max_wait_ms: float = arg(
        5.0,
        "how long a request waits for others to fill its batch",
        group="server",
        low=0.0,
        high=1000.0,
    )
    max_queue: int = arg(
        64,
        "requests waiting at most; past it the answer is 503 with Retry-After",
        group="server",
        low=1,
        high=100_000,
    )


@dataclasses.dataclass
class ServeBenchOptions:
    """``<project> bench --serve``: a load test of the project's own ``serve``."""

    serve: bool = arg(
        False,
        "load-test this project's 'serve' instead: started on 127.0.0.1 and sent --serve-requests "
        "requests at concurrency 1, 4 and 16 (throughput, latency percentiles, errors, 503s)",
    )
    serve_requests: int = arg(64, "--serve: requests sent at each concurrency", low=1, high=100_000)


# --- SIGTERM ----------------------------------------------------------------------------------

_state = {"armed": 0, "requested": False, "raised": False}
SHUTDOWN_GRACE_S = 60.0  # a stop that has not ended the process by then ends it (status 143)


def _on_sigterm(signum, frame) -> None:
    if _state["armed"]:
        _state["requested"] = True
        return
    if _state["raised"]:  # a second SIGTERM (``uv run`` forwards the one its group got) would
        return  # interrupt the shutdown the first began: atexit callbacks, temporary folders
    _state["raised"] = True
    # The exception unwinds the main thread; should a library swallow it (a bare ``except:``
    # around an import) or a thread keep the process alive, the stop still ends it.
    watchdog = threading.Timer(SHUTDOWN_GRACE_S, _force_exit)
    watchdog.daemon = True
    watchdog.start()
    raise Terminated("SIGTERM")


def _force_exit() -> None:
    print(f"stopped by SIGTERM: still running {SHUTDOWN_GRACE_S:g} s later", file=sys.stderr)
    sys.stderr.flush()
    # what the process registered to clean up at exit (a demo's upload folder) still runs, bounded
    # in its turn: a cleanup that hangs does not keep the process either
    last = threading.Timer(SHUTDOWN_GRACE_S, os._exit, (EXIT_TERMINATED,))
    last.daemon = True
    last.start()
    with contextlib.suppress(BaseException):  # exiting whatever the cleanups raise
        atexit._run_exitfuncs()
    os._exit(EXIT_TERMINATED)


def handle_sigterm() -> None:
    """Handle SIGTERM as the module says (only the main thread may set signal handlers)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_sigterm)
    _state["requested"] = False
    _state["raised"] = False


@contextlib.contextmanager
def stop_point() -> Iterator[None]:
    """While inside, SIGTERM is deferred to ``stop_requested()`` instead of raised."""
    _state["armed"] += 1
    try:
        yield
    finally:
        _state["armed"] -= 1


def stop_requested() -> bool:
    return _state["requested"]


def request_stop() -> None:
    """Ask the running loop to stop, as SIGTERM does (tests and embedding applications)."""
    _state["requested"] = True


# --- parsing and running a command ------------------------------------------------------------


def number_parser(tp: type, **bounds: Any) -> Callable:
    """An argparse ``type`` for ``int`` or ``float`` that applies :func:`number_problem`."""

    def parse(text: str):
        try:
            value = tp(text)
        except ValueError:
            kind = "an integer" if tp is int else "a number"
            raise argparse.ArgumentTypeError(f"{text!r} is not {kind}") from None
        problem = number_problem(value, tp, **bounds)
        if problem:
            raise argparse.ArgumentTypeError(f"{text!r} {problem}")
        return value

    parse.__name__ = tp.__name__
    return parse


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def add_dataclass_args(parser: argparse.ArgumentParser, cls: type) -> None:
    """Add one option per field of dataclass ``cls`` (``foo_bar`` -> ``--foo-bar``)."""
    hints = typing.get_type_hints(cls)
    groups: dict[str, argparse._ArgumentGroup] = {}
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        tp, optional = _unwrap_optional(hints[f.name])
        help_text = f.metadata.get("help", "")
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = None
        positional = f.metadata.get("positional", False)
        names = [f.name] if positional else ["--" + f.name.replace("_", "-")]
        kwargs: dict[str, Any] = {"help": help_text}
        if not positional:  # absent from the namespace unless typed: from_namespace fills it
            kwargs["dest"] = f.name
            kwargs["default"] = argparse.SUPPRESS
        elif default is not None and not isinstance(default, list):
            kwargs["nargs"] = "?"
            kwargs["default"] = default
        if "const" in f.metadata:  # a flag that may stand alone (``--compile`` = ``--compile on``)
            kwargs["nargs"], kwargs["const"] = "?", f.metadata["const"]
        if tp is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(tp) is Literal:
            choices = typing.get_args(tp)
            kwargs["choices"] = choices
            kwargs["type"] = type(choices[0])
        elif typing.get_origin(tp) in (list, tuple):
            (inner,) = typing.get_args(tp)[:1]
            kwargs["type"] = _typed(inner, f.metadata)
            kwargs["nargs"] = "+" if positional else "*"
        else:
            kwargs["type"] = _typed(tp, f.metadata)
            if "choices" in f.metadata:
                kwargs["choices"] = f.metadata["choices"]
        if help_text and not positional and default is not None:
            kwargs["help"] = f"{help_text} (default: {default})"
        if f.metadata.get("required") and not positional:
            kwargs["help"] = f"{help_text} (required)"
        title = f.metadata.get("group")
        target = groups.setdefault(title, parser.add_argument_group(title)) if title else parser
        target.add_argument(*names, **kwargs)
        add_hidden_spellings(parser, f, kwargs)


def add_hidden_spellings(parser: argparse.ArgumentParser, f: Any, kwargs: dict) -> None:
    """Older spellings of a flag, accepted and left out of ``--help``: ``aliases`` (the same flag
    under another name) and ``negative`` (``("--no-compile", "off")``: a flag setting one value)."""
    negative = f.metadata.get("negative")
    if negative:
        flag, value = negative
        parser.add_argument(
            flag,
            dest=f.name,
            action="store_const",
            const=value,
            default=argparse.SUPPRESS,
            help=argparse.SUPPRESS,
        )
    aliases = f.metadata.get("aliases", ())
    if aliases:
        hidden = {**kwargs, "help": argparse.SUPPRESS, "default": argparse.SUPPRESS}
        parser.add_argument(*aliases, **hidden)


def _typed(tp: Any, metadata: Any) -> Any:
    """``tp`` itself, or a checked parser for ``int`` and ``float`` (or the field's own ``parse``)."""
    if "parse" in metadata:
        return metadata["parse"]
    if tp in (int, float):
        bounds = {k: metadata[k] for k in BOUNDS if k in metadata}
        return number_parser(tp, **bounds)
    return tp


def check_required(parser: argparse.ArgumentParser, cls: type, ns: argparse.Namespace) -> None:
    """Refuse, as argparse does, a command run without a flag marked ``required`` (checked after
    parsing so that an alias counts as the flag)."""
    missing = [
        "--" + f.name.replace("_", "-")
        for f in dataclasses.fields(cls)
        if f.metadata.get("required") and getattr(ns, f.name, None) is None
    ]
    if missing:
        parser.error(f"the following arguments are required: {', '.join(missing)}")


def from_namespace(cls: type, ns: argparse.Namespace) -> Any:
    """Build dataclass ``cls`` from the parsed options; the flags not typed take their declared
    default. A config with a ``given`` init-only field (``RunConfig``'s) receives the names of
    the flags the user typed (its ``typed``: a typed flag wins over a default that follows
    another)."""
    fields = [f for f in dataclasses.fields(cls) if f.init]
    given = frozenset(f.name for f in fields if hasattr(ns, f.name))
    values = {f.name: getattr(ns, f.name) for f in fields if f.name in given}
    for name, value in values.items():
        if isinstance(value, list) and typing.get_origin(typing.get_type_hints(cls)[name]) is tuple:
            values[name] = tuple(value)
    if "given" in inspect.signature(cls).parameters:
        values["given"] = given
    return cls(**values)


@dataclasses.dataclass
class Command:
    """One subcommand: its config dataclass, the function that runs it, and its help.

    The function takes the config; an ``int`` it returns is the exit status, anything else (a
    trainer's summary) means success. A project's ``cli.py`` keeps each command's function small
    and has it import its module when called: ``--help`` or a refused flag then never imports
    what the commands import (torch alone takes about 1.5 s on a 2-core machine)."""

    config: type
    run: Callable[[Any], Any]
    help: str


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose refusal (unknown or misspelled flag, bad value) is one line naming
    the flag, not the whole usage text; it exits with status 2 as argparse does."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser(
    prog: str, description: str, commands: dict[str, Command]
) -> argparse.ArgumentParser:
    # allow_abbrev=False: a misspelled flag (--epoch for --epochs) is an error, never a guess
    parser = Parser(prog=prog, description=description, allow_abbrev=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    parser.command_parsers = {}
    for name, cmd in commands.items():
        p = sub.add_parser(name, help=cmd.help, description=cmd.help, allow_abbrev=False)
        add_dataclass_args(p, cmd.config)
        p.set_defaults(_command=name)
        parser.command_parsers[name] = p
    return parser


def run_cli(
    prog: str, description: str, commands: dict[str, Command], argv: Sequence[str] | None = None
) -> int:
    """Parse ``argv``, run the chosen command; what a user can cause ends in one line and a status.

    Exit statuses: 2 for a user error or an I/O error (a full disk, a read-only or missing folder),
    130 for Ctrl-C, 143 for SIGTERM (a training loop has saved ``last.pt`` by then).
    """
    parser = build_parser(prog, description, commands)
    ns = parser.parse_args(argv)
    cmd = commands[ns._command]
    check_required(parser.command_parsers[ns._command], cmd.config, ns)
    handle_sigterm()
    finished = False
    try:
        cfg = from_namespace(cmd.config, ns)
        # shared.runs and shared.device import torch (about 1.5 s), which --help, a refused flag
        # and a missing input file never need: imported only where needed
        if isinstance(cfg, RunConfig) and cfg.out is not None:
            from shared.runs import check_writable_dir  # slow: torch

            check_writable_dir(cfg.out, "--out")  # before any work, not after it
        if isinstance(getattr(cfg, "device", None), str):
            from shared.device import launched_by_torchrun, select_device  # slow: torch

            if launched_by_torchrun():  # join the group before anything picks a run folder
                select_device(cfg.device)
        with status_lines(prog.replace("-", "_"), bool(getattr(cfg, "quiet", False))):
            result = cmd.run(cfg)
        finished = True
    except UserError as exc:
        return _fail(prog, str(exc), EXIT_USER_ERROR)
    except OSError as exc:
        return _fail(prog, describe_os_error(exc), EXIT_USER_ERROR)
    except Terminated as exc:
        return _fail(prog, f"stopped by SIGTERM{_detail(exc)}", EXIT_TERMINATED)
    except KeyboardInterrupt as exc:
        return _fail(prog, f"interrupted{_detail(exc)}", EXIT_INTERRUPTED)
    finally:
        if "shared.device" in sys.modules:  # a command that never loaded torch has no group
            sys.modules["shared.device"].cleanup(finished)
    return int(result) if isinstance(result, int) else 0


@contextlib.contextmanager
def status_lines(package: str, quiet: bool) -> Iterator[None]:
    """While a command runs: the status lines ``shared`` and the command's ``package`` log
    (``logging``'s INFO: what was found, what is being done) on stderr as plain lines, stdout
    staying for results; with ``--quiet`` only warnings. Other libraries' loggers are left as
    they are, and these two as they were once the command ends."""
    loggers = [logging.getLogger(name) for name in ("shared", package)]
    before = [(lg.handlers, lg.level, lg.propagate) for lg in loggers]
    for logger in loggers:
        logger.handlers = [logging.StreamHandler(sys.stderr)]  # this command's stderr
        logger.setLevel(logging.WARNING if quiet else logging.INFO)
        logger.propagate = False
    try:
        yield
    finally:
        for logger, (handlers, level, propagate) in zip(loggers, before, strict=True):
            logger.handlers, logger.propagate = handlers, propagate
            logger.setLevel(level)


def _detail(exc: BaseException) -> str:
    text = str(exc)
    return f": {text}" if text and text != "SIGTERM" else ""


def _fail(prog: str, message: str, code: int) -> int:
    print(
        f"{prog}: error: {message}" if code == EXIT_USER_ERROR else f"{prog}: {message}",
        file=sys.stderr,
        flush=True,
    )
    return code


def describe_os_error(exc: OSError) -> str:
    """``[Errno 28] No space left on device: 'x'`` -> ``cannot write x: no space left on device``."""
    reason = (exc.strerror or exc.__class__.__name__).lower()
    target = exc.filename or ""
    if exc.filename2:
        target = f"{target} -> {exc.filename2}"
    return f"{target}: {reason}" if target else f"{reason} ({exc})"
