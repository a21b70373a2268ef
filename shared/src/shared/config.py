"""Dataclass configs turned into argparse subcommands, and the errors a user can cause.

A command's options are one dataclass; every field becomes a ``--flag`` with its default and the
``help`` given through :func:`arg`. ``RunConfig`` holds the flags every training-like command shares.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import types
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


class UserError(Exception):
    """An error the user can fix (missing file, bad flag value, offline download, ...).

    The CLI prints its message alone, without a traceback, and exits with status 2.
    """


class NotBuiltError(UserError):
    """A subcommand that exists in the plan but is not implemented yet."""


def arg(default: Any = dataclasses.MISSING, help: str = "", **kwargs: Any) -> Any:
    """A dataclass field carrying its CLI help text (``default_factory`` for mutable defaults)."""
    metadata = {"help": help}
    if "choices" in kwargs:
        metadata["choices"] = kwargs.pop("choices")
    if "positional" in kwargs:
        metadata["positional"] = kwargs.pop("positional")
    if "default_factory" in kwargs:
        return dataclasses.field(default_factory=kwargs.pop("default_factory"), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata, **kwargs)


@dataclasses.dataclass
class RunConfig:
    """Flags shared by every command that runs a model and writes a run folder."""

    device: Literal["auto", "cpu", "cuda", "mps"] = arg(
        "auto", "where to run: auto picks cuda, then mps, then cpu"
    )
    seed: int = arg(0, "random seed for python, numpy, torch and data order")
    out: Path | None = arg(None, "run folder (default: runs/<project>/<YYYYmmdd-HHMMSS>)")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = arg(
        "auto",
        "autocast precision; auto is bf16 on CUDA (fp16 on GPUs without bf16) and fp32 elsewhere",
    )
    compile: bool = arg(False, "torch.compile the model")
    resume: str | None = arg(None, "checkpoint path, or 'latest' for the newest run's last.pt")
    quiet: bool = arg(False, "no progress bars or per-step logging")
    data_dir: Path | None = arg(None, "data root (default: $DL_DATA_DIR, else <repo>/data)")


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
        if not positional:
            kwargs["dest"] = f.name
            kwargs["default"] = default
        elif default is not None and not isinstance(default, list):
            kwargs["nargs"] = "?"
            kwargs["default"] = default
        if tp is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(tp) is Literal:
            choices = typing.get_args(tp)
            kwargs["choices"] = choices
            kwargs["type"] = type(choices[0])
        elif typing.get_origin(tp) in (list, tuple):
            (inner,) = typing.get_args(tp)[:1]
            kwargs["type"] = inner
            kwargs["nargs"] = "+" if positional else "*"
        else:
            kwargs["type"] = tp
            if "choices" in f.metadata:
                kwargs["choices"] = f.metadata["choices"]
        if help_text and not positional and default is not None and tp is not bool:
            kwargs["help"] = f"{help_text} (default: {default})"
        parser.add_argument(*names, **kwargs)


def from_namespace(cls: type, ns: argparse.Namespace) -> Any:
    """Build dataclass ``cls`` from the parsed options."""
    values = {f.name: getattr(ns, f.name) for f in dataclasses.fields(cls) if f.init}
    for name, value in values.items():
        if isinstance(value, list) and typing.get_origin(typing.get_type_hints(cls)[name]) is tuple:
            values[name] = tuple(value)
    return cls(**values)


def to_jsonable(obj: Any) -> Any:
    """Dataclasses, paths and tuples as plain JSON values."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


@dataclasses.dataclass
class Command:
    """One subcommand: its config dataclass, the function that runs it, and its help."""

    config: type | None
    run: Callable[[Any], Any]
    help: str
    # Extra positional/flag setup beyond the dataclass (rarely needed).
    setup: Callable[[argparse.ArgumentParser], None] | None = None


def not_built(project: str, command: str, issue: int) -> Callable[[Any], Any]:
    """A subcommand that is planned but not implemented: says so and exits 2."""

    def run(_cfg: Any) -> None:
        raise NotBuiltError(f"'{project} {command}' is not built yet (tracked in issue #{issue}).")

    return run


def build_parser(
    prog: str, description: str, commands: dict[str, Command]
) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, cmd in commands.items():
        p = sub.add_parser(name, help=cmd.help, description=cmd.help)
        if cmd.config is not None:
            add_dataclass_args(p, cmd.config)
        if cmd.setup is not None:
            cmd.setup(p)
        p.set_defaults(_command=name)
    return parser


def run_cli(
    prog: str, description: str, commands: dict[str, Command], argv: Sequence[str] | None = None
) -> int:
    """Parse ``argv``, run the chosen command, and turn user errors into one line and exit 2."""
    parser = build_parser(prog, description, commands)
    ns = parser.parse_args(argv)
    cmd = commands[ns._command]
    try:
        cfg = from_namespace(cmd.config, ns) if cmd.config is not None else ns
        if isinstance(getattr(cfg, "device", None), str):
            from shared.distributed import launched_by_torchrun

            if launched_by_torchrun():  # join the group before anything picks a run folder
                from shared.device import select_device

                select_device(cfg.device)
        result = cmd.run(cfg)
    except UserError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        from shared.distributed import cleanup

        cleanup()
    return int(result) if isinstance(result, int) else 0
