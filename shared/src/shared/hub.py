"""Pretrained models in transformers' layout, from a local folder or the Hugging Face Hub: where
they are (``model_folder``), and their JSON files read as data (``read_model_json``: regular files
of bounded size only, so a symlink to ``/dev/zero`` or a FIFO is refused before it is read).

austen-net imports GPT-2 and Llama folders, audio-net fine-tunes AST, multi-net embeds audio with
CLAP: one rule for all three. Offline, a Hub name is one message naming the folder to pass instead.
"""

from __future__ import annotations

import dataclasses
import json
import math
import stat
from pathlib import Path

import torch

from shared.errors import UserError
from shared.extras import require
from shared.files import read_regular_file

MAX_JSON_BYTES = 16 << 20  # a config or tokenizer config (Llama 3 70B's shard index: 60 KB)


@dataclasses.dataclass(frozen=True)
class Source:
    """A kind of pretrained model a project reads (AST, CLAP, GPT-2 and Llama): the flag that names
    it, the files a Hub download fetches, its default, and the packages its ``pretrained`` extra
    installs. One place for what every such reader needs: ``require`` them, find the ``folder``."""

    project: str
    flag: str
    what: str  # for the message naming the extra: "the AST backbone"
    default: str | None = None
    wanted: tuple[str, ...] = ("config.json", "preprocessor_config.json", "model.safetensors")
    packages: tuple[str, ...] = ("transformers", "safetensors")

    def require(self) -> None:
        require(self.packages, self.project, "pretrained", self.what)

    def folder(self, source: str | None, quiet: bool = False) -> Path:
        """``source`` (or the default) as a local folder, or a Hub name fetched once."""
        name = source or self.default
        if name is None:
            raise UserError(f"{self.flag}: name a folder holding the model")
        return model_folder(
            name, flag=self.flag, project=self.project, wanted=list(self.wanted), quiet=quiet
        )


def shown(value: object, limit: int = 60) -> str:
    """A config value as a message shows it: at most ``limit`` characters of its repr."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def config_integer(
    config: dict, key: str, where: object, low: int = 1, high: int = 1 << 20, default=None
) -> int:
    """``config[key]`` (or ``default``), an integer in [low, high]; else one ``UserError``."""
    value = config.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise UserError(f"{where}: {key} {shown(value)} is not an integer in [{low}, {high}]")
    return value


def config_number(
    config: dict, key: str, default: float, where: object, high: float, *, zero: bool = False
) -> float:
    """``config[key]`` (or ``default``), a finite number in (0, high] ([0, high] with ``zero``): a
    string, a list, NaN or infinity is refused here, not met later as a traceback."""
    value = config.get(key, default)
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or not (value >= 0 if zero else value > 0) or not value <= high:
        span = f"[0, {high:g}]" if zero else f"(0, {high:g}]"
        raise UserError(f"{where}: {key} {shown(value)} is not a number in {span}")
    return float(value)


def config_boolean(config: dict, key: str, default: bool, where: object) -> bool:
    value = config.get(key, default)
    if not isinstance(value, bool):
        raise UserError(f"{where}: {key} {shown(value)} is not true or false")
    return value


def model_folder(
    source: str,
    *,
    flag: str,
    project: str,
    wanted: list[str],
    quiet: bool = False,
) -> Path:
    """``source`` as a local folder, or a Hub name downloaded (once, the ``wanted`` file patterns
    only) into the Hub's cache. ``flag`` names the option in messages; the ``pretrained`` extra of
    ``project`` installs huggingface_hub."""
    path = Path(source).expanduser()
    if path.is_dir():
        return path
    if path.exists() or source.startswith((".", "/", "~")) or source.count("/") > 1:
        raise UserError(f"{flag} {source}: not a folder holding a model in transformers' layout")
    require(("huggingface_hub",), project, "pretrained", f"fetching {source} from the Hub")
    from huggingface_hub import snapshot_download  # optional: the pretrained extra
    from huggingface_hub.utils import disable_progress_bars

    if quiet:
        disable_progress_bars()
    try:
        return Path(snapshot_download(repo_id=source, allow_patterns=wanted))
    except Exception as exc:  # offline, a name that does not exist, a gated model
        reason = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0][:200]
        raise UserError(
            f"could not fetch {source!r} from the Hugging Face Hub ({reason}). Without the "
            f"internet, download it elsewhere (huggingface-cli download {source}) and pass the "
            f"folder that holds its config.json as {flag}"
        ) from exc


def read_model_json(path: Path, required: bool = True, limit: int = MAX_JSON_BYTES) -> dict:
    """A JSON object from a regular file of at most ``limit`` bytes: a device, a FIFO, a folder or
    a document nested too deep for Python's parser is one message. A missing optional file
    (``required=False``) reads as ``{}``."""
    if not path.exists() and not path.is_symlink():
        if required:
            raise UserError(f"{path.parent} has no {path.name}: not a transformers model folder")
        return {}
    raw = read_regular_file(path, limit, "JSON file of a model folder")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise UserError(f"{path} is not readable JSON ({exc.__class__.__name__})") from exc
    if not isinstance(data, dict):
        raise UserError(f"{path} is not a JSON object")
    return data


def safetensors_file(folder: Path) -> Path:
    """``folder/model.safetensors``; PyTorch ``.bin`` files are pickles and are never read."""
    weights = folder / "model.safetensors"
    if not weights.is_file():
        raise UserError(
            f"{folder}: no model.safetensors (PyTorch .bin files are not read: they are pickles)"
        )
    return weights


def read_safetensors_file(path: Path, *, finite: bool = True) -> dict[str, torch.Tensor]:
    """The tensors of the safetensors file ``path``, or one ``UserError``: a path that is not a
    regular file (``/dev/zero``, a FIFO), a header that lies (a length of 10^15), and, with
    ``finite``, a tensor holding NaN or infinite values (a model built on it would generate
    nothing but errors) are refused."""
    from safetensors.torch import load_file  # optional: the project's pretrained extra

    try:
        if not stat.S_ISREG(path.stat().st_mode):
            raise UserError(f"{path} is not a regular file: not a safetensors file")
    except OSError as exc:
        raise UserError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    try:
        tensors = load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types
        reason = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0][:160]
        raise UserError(f"{path} is not a readable safetensors file ({reason})") from exc
    for name, t in tensors.items() if finite else ():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise UserError(f"{path}: {name} holds NaN or infinite values: refusing these weights")
    return tensors


def check_config_fits_weights(wanted: int, weights: Path, what: str) -> None:
    """Refuse a config whose network (``wanted`` parameters, counted on the meta device) is larger
    than the tensors ``weights`` holds, read from the safetensors header alone: a config cannot
    make a loader allocate what the file does not hold."""
    from safetensors import safe_open  # optional: the project's pretrained extra

    try:
        with safe_open(str(weights), framework="pt") as f:
            held = sum(math.prod(f.get_slice(k).get_shape()) for k in list(f.keys()))
    except Exception as exc:  # safetensors raises its own error types
        raise UserError(f"{weights} is not a readable safetensors file ({exc})") from exc
    if wanted > held:
        raise UserError(
            f"{weights}: its config.json gives {what} of {wanted:,} parameters, the file holds "
            f"{held:,}: the config does not describe these weights"
        )


def from_pretrained_quietly(model_class, folder: Path, what: str, **kwargs):
    """``model_class.from_pretrained(folder, use_safetensors=True, **kwargs)`` without
    transformers' loading bar and load report (a new head or an unused tower is the point
    here), its failures one ``UserError`` naming ``what``."""
    from transformers.utils import logging as hf_logging  # optional: the pretrained extra

    verbosity = hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()  # one line per command, not a loading bar
    hf_logging.set_verbosity_error()
    try:
        return model_class.from_pretrained(folder, use_safetensors=True, **kwargs)
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        reason = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0][:200]
        raise UserError(f"{folder}: transformers could not load its {what} ({reason})") from exc
    finally:
        hf_logging.set_verbosity(verbosity)
