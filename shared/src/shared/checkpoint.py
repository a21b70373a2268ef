"""Checkpoints read back: everything needed to resume exactly (``read_resume``), and the checks
on what a checkpoint may make us build (``model_from_checkpoint``). What a run writes, checkpoints
included, is ``shared.runs``'.

Loading is safe and strict: ``torch.load(weights_only=True)`` (no code runs from the file), the
project tag must match, the format version must be one this code reads, and the keys the caller
needs must be present, or the user gets one message naming what is wrong.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

from shared.errors import UserError
from shared.files import runs_root, to_jsonable
from shared.runs import FORMAT_VERSION, tidy_interrupted

log = logging.getLogger(__name__)


def run_of(checkpoint: Path) -> Path:
    """The run folder a checkpoint belongs to (``<run>/checkpoints/best.pt`` -> ``<run>``)."""
    parent = checkpoint.resolve().parent
    return parent.parent if parent.name == "checkpoints" else parent


def checkpoint_in(run: Path, names: Iterable[str] = ("best.pt", "last.pt")) -> Path | None:
    for name in names:
        for candidate in (run / "checkpoints" / name, run / name):
            if candidate.is_file():
                return candidate
    return None


def load_checkpoint(
    path: str | Path,
    *,
    project: str,
    required: Iterable[str] = (),
    map_location: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Load a checkpoint written by ``project`` holding ``required``; anything else is a user error."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist")
    try:
        with warnings.catch_warnings():  # a plain pickle makes torch warn before it refuses
            warnings.simplefilter("ignore")
            data = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # any failure to unpickle: a crafted or damaged file, never code run
        raise UserError(
            f"{path} is not a readable PyTorch checkpoint ({exc.__class__.__name__})"
        ) from exc
    if not isinstance(data, dict) or "project" not in data:
        raise UserError(f"{path} is not a checkpoint of this portfolio (no project tag)")
    if data["project"] != project:
        raise UserError(
            f"{path} is a checkpoint of {data['project']!r}, not {project!r}: "
            f"pass a checkpoint written by '{project} train'"
        )
    version = data.get("format_version")
    if version != FORMAT_VERSION:
        raise UserError(
            f"{path} has checkpoint format {version!r}; this version of {project} reads format "
            f"{FORMAT_VERSION} (train again, or use the version of the code that wrote it)"
        )
    missing = [key for key in required if key not in data]
    if missing:
        raise UserError(
            f"{path} is an incomplete {project} checkpoint: it lacks {', '.join(missing)}"
        )
    return data


def find_latest(runs_root: str | Path) -> Path | None:
    """The newest ``checkpoints/last.pt`` under ``runs_root`` (by modification time)."""
    candidates = list(Path(runs_root).glob("*/checkpoints/last.pt"))
    return max(candidates, key=lambda p: p.stat().st_mtime) if candidates else None


def resolve_resume(resume: str | None, *, out: Path | None, runs_root: Path) -> Path | None:
    """Turn ``--resume PATH|latest`` into a checkpoint path (None when not resuming)."""
    if resume is None:
        return None
    if resume != "latest":
        path = Path(resume)
        if path.is_dir():
            path = path / "checkpoints" / "last.pt"
        if not path.is_file():
            raise UserError(f"--resume {resume}: no checkpoint at {path}")
        return path
    if out is not None and (Path(out) / "checkpoints" / "last.pt").is_file():
        return Path(out) / "checkpoints" / "last.pt"
    latest = find_latest(runs_root)
    if latest is None:
        raise UserError(f"--resume latest: no checkpoints/last.pt under {runs_root}; train first")
    return latest


@dataclasses.dataclass
class Resumed:
    """A run that goes on (``--resume``): the checkpoint it continues and that checkpoint's state."""

    path: Path
    state: dict[str, Any]

    @property
    def config(self) -> dict[str, Any]:
        """The settings the run started with (its ``config``), as saved."""
        saved = self.state.get("config")
        return saved if isinstance(saved, dict) else {}


def read_resume(
    cfg: Any,
    project: str,
    required: Iterable[str],
    fixed: Iterable[str] = (),
    why: str = "",
) -> Resumed | None:
    """``--resume PATH|latest``: the checkpoint the run goes on from (None for a new run). A
    killed save's temporaries beside it are removed first; a checkpoint of another project, one
    missing the ``required`` keys, or a command whose ``fixed`` settings differ from the run's
    (``why`` says why they are fixed) is refused, all before a run folder is touched."""
    path = resolve_resume(cfg.resume, out=cfg.out, runs_root=runs_root(project))
    if path is None:
        return None
    tidy_interrupted(run_of(path))  # a killed save's temporaries, even if refused
    state = load_checkpoint(path, project=project, required=required, map_location="cpu")
    check_resume_settings(path, state.get("config"), cfg, fixed, why)
    return Resumed(path, state)


@contextlib.contextmanager
def refuse_if_damaged(path: str | Path):
    """Interpret a loaded checkpoint inside this block: a value of the wrong type or shape
    anywhere in it (a damaged or crafted file) becomes one ``UserError``, not a traceback."""
    try:
        yield
    except UserError:
        raise
    except (
        TypeError,
        KeyError,
        ValueError,
        AttributeError,
        IndexError,
        OverflowError,
        RuntimeError,
    ) as exc:
        raise UserError(
            f"{path}: a damaged checkpoint ({exc.__class__.__name__}: {_first_line(exc)})"
        ) from exc


class _SkipInit(TorchFunctionMode):
    """Parameter initialisers do nothing (the probe's values are never read). On the meta device
    they would run through torch's reference implementations, whose first use imports the compiler
    stack: about a second of every ``predict``'s and ``generate``'s startup."""

    INIT = {torch.Tensor.normal_, torch.Tensor.uniform_, torch.Tensor.fill_, torch.Tensor.zero_}

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        initialiser = func in self.INIT or (
            getattr(func, "__module__", "") == "torch.nn.init" and func.__name__.endswith("_")
        )
        if initialiser and (args or "tensor" in kwargs):
            return args[0] if args else kwargs["tensor"]
        return func(*args, **kwargs)


def model_from_checkpoint(
    build: Callable[[], torch.nn.Module], weights: Any, path: str | Path, *, assign: bool = False
) -> torch.nn.Module:
    """The model ``build()`` makes, holding ``weights``, checked before any memory is spent.

    A checkpoint's settings (layer counts, widths, labels) are data and may be crafted: a config
    saying ``n_layer=100000`` would allocate gigabytes before ``load_state_dict`` could complain.
    So the model is first built on the meta device (shapes only, no memory), its parameter and
    buffer names and shapes are compared with ``weights``, and only a model that matches is built
    for real and loaded. A project checks its own sanity bounds (e.g. a layer count against the
    weights' keys) before calling this, so that the meta build itself stays cheap.

    ``assign``: the model takes ``weights``' tensors themselves (their dtype, no copy) instead of
    being built and filled: a 1B-parameter model loaded in bf16 never exists in fp32 as well.
    Parameters the model ties together (an embedding and its output head) stay one.
    """
    try:
        with torch.device("meta"), _SkipInit():
            probe = build()
    except (
        TypeError,
        ValueError,
        RuntimeError,
        KeyError,
        OverflowError,
        ZeroDivisionError,
        AssertionError,
    ) as exc:
        raise UserError(f"{path}: its model settings are invalid ({_first_line(exc)})") from exc
    check_weights_fit(probe.state_dict(), weights, path)
    if assign:
        return assigned(probe, weights)
    del probe
    model = build()
    model.load_state_dict(weights)
    return model


def assigned(model: torch.nn.Module, weights: dict[str, torch.Tensor]) -> torch.nn.Module:
    """``model`` (built on the meta device) holding ``weights``' own tensors, ties kept."""
    first: dict[int, str] = {}
    ties: list[tuple[str, str]] = []
    for name, p in model.named_parameters(remove_duplicate=False):
        ties += [(name, first[id(p)])] if id(p) in first else []
        first.setdefault(id(p), name)
    model.load_state_dict(weights, assign=True)
    for name, original in ties:
        owner, _, leaf = name.rpartition(".")
        setattr(model.get_submodule(owner), leaf, model.get_parameter(original))
    return model


def check_weights_fit(expected: dict[str, Any], weights: Any, path: str | Path) -> None:
    """Refuse ``weights`` whose names or shapes differ from the ``expected`` state dict."""
    if not isinstance(weights, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in weights.items()
    ):
        raise UserError(f"{path}: its model weights are not a mapping of names to tensors")
    want = {k: tuple(v.shape) for k, v in expected.items()}
    given = {k: tuple(v.shape) for k, v in weights.items()}
    missing = sorted(want.keys() - given.keys())
    unexpected = sorted(given.keys() - want.keys())
    wrong = sorted(k for k in want.keys() & given.keys() if want[k] != given[k])
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        if wrong:
            k = wrong[0]
            parts.append(f"{len(wrong)} of another shape (e.g. {k}: {given[k]}, not {want[k]})")
        raise UserError(
            f"{path}: its weights do not fit the model its settings describe: " + ", ".join(parts)
        )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else exc.__class__.__name__)[:160]


def check_settings_bounds(
    path: str | Path, settings: dict[str, Any], bounds: dict[str, tuple]
) -> None:
    """Refuse settings of a checkpoint outside ``bounds`` (name -> (low, high)), or not integers
    where the bounds are integers, before anything is built from them."""
    for name, (low, high) in bounds.items():
        value = settings.get(name)
        integral = isinstance(low, int)
        ok = (
            isinstance(value, int) and not isinstance(value, bool)
            if integral
            else isinstance(value, (int, float)) and not isinstance(value, bool)
        )
        if not ok or not low <= value <= high:
            raise UserError(
                f"{path}: its setting {name}={value!r} is outside {low}..{high}: "
                "not a checkpoint this code wrote"
            )


def settings_from_checkpoint(
    cls: type, raw: Any, bounds: dict[str, tuple], path: str | Path, what: str
) -> Any:
    """Dataclass ``cls`` from a checkpoint's ``raw`` settings: a dict of ``cls``'s fields only,
    within ``bounds`` (missing fields take ``cls``'s defaults), else one ``UserError`` saying that
    ``what`` (e.g. "its fusion_config") is not what this code writes."""
    fields = {f.name for f in dataclasses.fields(cls)}
    if not isinstance(raw, dict) or not set(raw) <= fields:
        raise UserError(f"{path}: {what} is not one this code writes")
    check_settings_bounds(path, {**dataclasses.asdict(cls()), **raw}, bounds)
    return cls(**raw)


def check_resume_settings(
    path: str | Path, saved: Any, cfg: Any, keys: Iterable[str], why: str = ""
) -> None:
    """Refuse to resume ``path`` (whose run had config ``saved``) with a command whose ``keys``
    differ: the run would go on with one model and record another in its config and summary."""
    saved = saved if isinstance(saved, dict) else {}
    for key in keys:
        now = to_jsonable(getattr(cfg, key))
        if saved.get(key) is not None and saved[key] != now:  # None: left to a preset
            flag = "--" + key.replace("_", "-")
            raise UserError(
                f"{path} was trained with {flag} {saved[key]}, not {now}: resume with the same "
                f"settings{f' ({why})' if why else ''}"
            )


def as_flag_value(value: Any) -> str:
    """A value as a user types it after its flag: a list's items separated by spaces."""
    if isinstance(value, (list, tuple)):
        return " ".join(str(v) for v in value)
    return str(value)


def run_data_settings(cfg: Any, saved: Any, fields: Iterable[str], *, quiet: bool = False) -> Any:
    """``cfg`` with the data settings of the run that wrote a checkpoint (``saved``: its
    config) where the command gives none: ``evaluate`` scores the data the run trained on, not a
    download of the default data set. Fields the user gave win; a saved folder that is gone is
    left out (the command's default then applies)."""
    saved = saved if isinstance(saved, dict) else {}
    given = {f: getattr(cfg, f) for f in fields}
    if any(v not in (None, [], ()) for v in given.values()):
        return cfg  # the user chose the data: use exactly that
    taken = {}
    for name in fields:
        value = saved.get(name)
        if isinstance(value, str) and Path(value).exists():
            taken[name] = Path(value)
        elif isinstance(value, list) and value and all(Path(str(v)).exists() for v in value):
            taken[name] = [Path(str(v)) for v in value]
    if taken:
        shown = ", ".join(f"--{k.replace('_', '-')} {as_flag_value(v)}" for k, v in taken.items())
        log.info(f"using the run's own data ({shown}); give the flags to choose other data")
        return dataclasses.replace(cfg, **taken)
    return cfg
