"""The command line: config dataclasses (``shared.config``) turned into argparse subcommands, and
``run_cli``, the process around one command.

Every field of a command's dataclass becomes a ``--flag`` with its default and its :func:`arg`
help. ``run_cli`` refuses an unwritable ``--out`` before any work, joins a torchrun group before
anything picks a run folder, and turns what a user can cause (``UserError``, ``OSError`` such as a
full disk or a read-only folder, Ctrl-C, SIGTERM) into one line on stderr and an exit status,
never a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import inspect
import os
import sys
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any, Literal

from shared import signals
from shared.config import RunConfig, number_problem
from shared.errors import (
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    EXIT_USER_ERROR,
    Terminated,
    UserError,
)


def number_parser(tp: type, low: Any = None, high: Any = None, above: Any = None) -> Callable:
    """An argparse ``type`` for ``int`` or ``float`` that applies :func:`number_problem`."""

    def parse(text: str):
        try:
            value = tp(text)
        except ValueError:
            kind = "an integer" if tp is int else "a number"
            raise argparse.ArgumentTypeError(f"{text!r} is not {kind}") from None
        problem = number_problem(value, tp, low, high, above)
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
        bounds = {k: metadata[k] for k in ("low", "high", "above") if k in metadata}
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
    default. A config whose defaults depend on other flags declares ``given`` as an init-only
    field (``dataclasses.InitVar``): it receives the names of the flags the user typed, for
    ``shared.config.apply_defaults`` in its ``__post_init__``."""
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

    ``run`` is the function, or its name as ``"package.module:function"``, imported only when the
    command runs: a project's ``cli.py`` is then a table of names, and ``--help`` or a refused flag
    never imports what the commands import (torch alone takes about 1.5 s on a 2-core Xeon). The function takes the
    config; an ``int`` it returns is the exit status, anything else (a trainer's run and summary)
    means success."""

    config: type
    run: Callable[[Any], Any] | str
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


def command_function(run: Callable[[Any], Any] | str) -> Callable[[Any], Any]:
    """A command's function: ``run`` itself, or the function ``"module:function"`` names."""
    if callable(run):
        return run
    module, _, name = run.partition(":")
    return getattr(importlib.import_module(module), name)


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
    signals.install()
    finished = False
    try:
        cfg = from_namespace(cmd.config, ns)
        # shared.runs and shared.device import torch (about 1.5 s), which --help, a refused flag
        # and a missing input file never need: imported only where needed
        if isinstance(cfg, RunConfig) and cfg.out is not None:
            from shared.runs import check_writable_dir  # slow: torch

            check_writable_dir(cfg.out, "--out")  # before any work, not after it
        if isinstance(getattr(cfg, "device", None), str) and launched_by_torchrun():
            from shared.device import select_device  # slow: torch

            select_device(cfg.device)  # join the group before anything picks a run folder
        result = command_function(cmd.run)(cfg)
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
        if "shared.distributed" in sys.modules:  # a command that never loaded torch has no group
            sys.modules["shared.distributed"].cleanup(finished)
    return int(result) if isinstance(result, int) else 0


def launched_by_torchrun() -> bool:
    """torchrun's environment (``shared.distributed.launched_by_torchrun``, without torch)."""
    return all(k in os.environ for k in ("RANK", "LOCAL_RANK", "WORLD_SIZE"))


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
