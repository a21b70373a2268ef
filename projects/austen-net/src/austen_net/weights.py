"""``--weights auto``: the fastest weights on this machine that do not cost quality.

fp32, bf16 and int8 (CPU only) are each loaded and measured once per checkpoint and machine:
bits per character on the run's own validation text (the first ``SCORED_TOKENS`` tokens' worth of
windows, spread over the split, the same for every candidate) and tokens/s of a batch-1 greedy
decode by each path: eager, and the compiled step with each kernel (the library's one-row product
or the reduction, ``decode.RowReduction``). Among the candidates within ``BOUND`` bits/char of
fp32 the fastest wins, with its fastest kernel. Which one wins depends on the machine: bf16 and
int8 halve and quarter the bytes a token reads, which is what batch-1 generation waits on, where
the kernels stream them fast; fp32 wins where they do not. The choice and its reason are cached (``<data root>/cache/austen-net/weights``) and
logged; without the run's validation text there is nothing to check the bound on and fp32 is kept.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from pathlib import Path

import torch

from austen_net.corpus import validation_split_of
from austen_net.decode import KERNELS, compiled_decoder, generate
from austen_net.inference import PROJECT, load_model
from austen_net.windows import predicted_chars, total_nll
from shared.device import cpu_facts
from shared.errors import UserError
from shared.files import cache_root, read_regular_file, write_json
from shared.progress import duration

log = logging.getLogger(__name__)

BOUND = 0.005  # bits/char above fp32's that a faster path may cost
SCORED_TOKENS = 16_384
TIMED_TOKENS = 128
REPEATS = 3
MAX_CACHE_BYTES = 16 << 20  # a cache entry is a few hundred bytes


def candidates(device: torch.device) -> list[str]:
    return ["fp32", "bf16", "int8"] if device.type == "cpu" else ["fp32", "bf16"]


def machine() -> str:
    """What the choice depends on besides the checkpoint: the processor, torch, the device."""
    cpu = cpu_facts()["cpu_model"]
    return f"{cpu}|{torch.get_num_threads()} threads|torch {torch.__version__}"


def cache_file(checkpoint: Path, device: torch.device) -> Path:
    stat = checkpoint.stat()
    key = f"{checkpoint.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{device}|{machine()}"
    return cache_root(PROJECT) / "weights" / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.json"


def validation_texts(state: dict) -> list[str] | None:
    """The run's validation split, found again from its config (None when its text is gone)."""
    trained = state.get("config") or {}
    folders = [trained.get(k) for k in ("corpus_dir", "data_dir")]
    corpus_dir, data_dir = (Path(f) if f else None for f in folders)
    try:
        return validation_split_of(trained, corpus_dir, data_dir) or None
    except (UserError, OSError, TypeError, ValueError):
        return None


def measure_candidate(model, tok, texts: list[str], device: torch.device) -> dict:
    """A loaded candidate's bits/char (on up to ``SCORED_TOKENS`` validation tokens, the same
    windows for every candidate) and tokens/s of a greedy decode (the best of ``REPEATS`` runs of
    ``TIMED_TOKENS``) by each path it can take: eager, and the compiled step with each of its
    kernels (``decode.KERNELS``: the library's one-row product, or the reduction). The fastest
    path's speed is the candidate's, and its kernel the one ``generate`` compiles with."""
    streams = [torch.from_numpy(tok.encode_array(t)).to(device) for t in texts]
    streams = [s for s in streams if len(s) > 1]
    chars_per_token = predicted_chars(tok, texts, streams) / sum(len(s) - 1 for s in streams)
    with torch.no_grad():
        nll, count = total_nll(model, streams, model.cfg.block_size, 8, SCORED_TOKENS)
    bpc = nll / max(count, 1) / chars_per_token / math.log(2)
    idx = streams[0][None, :8]
    paths = {"eager": decode_rate(model, idx, None)}
    for kernel in KERNELS:
        step = compiled_decoder(model, kernel=kernel)
        if step is not None:  # (fbgemm's dynamic int8 does not compile)
            paths[kernel] = decode_rate(model, idx, step)
    fastest = max(paths, key=paths.get)
    return {
        "bpc": round(bpc, 5),
        "tokens_per_s": paths[fastest],
        "kernel": "blas" if fastest == "eager" else fastest,
        "paths": paths,
    }


def decode_rate(model, idx: torch.Tensor, step) -> float:
    """Tokens/s of a greedy decode after ``idx``: the best of ``REPEATS`` runs (what the machine
    can do, not its noise), after a warm-up that also compiles ``step``."""
    for _ in generate(model, idx, 4, temperature=0, step=step):
        pass
    best = math.inf
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        for _ in generate(model, idx, TIMED_TOKENS, temperature=0, step=step):
            pass
        best = min(best, time.perf_counter() - t0)
    return round(TIMED_TOKENS / best, 1)


def pick(measured: dict[str, dict]) -> tuple[str, str]:
    """The fastest candidate within ``BOUND`` bits/char of fp32, and why, in one sentence."""
    floor = measured["fp32"]["bpc"] + BOUND
    fine = [k for k, m in measured.items() if m["bpc"] <= floor]
    best = max(fine, key=lambda k: measured[k]["tokens_per_s"])
    figures = ", ".join(
        f"{k} {m['tokens_per_s']:,.0f} tok/s{f' ({kernel})' if (kernel := m.get('kernel')) else ''}"
        f" {round(m['bpc'] - measured['fp32']['bpc'], 4) + 0:+.4f} bits/char"
        for k, m in measured.items()
    )
    return best, f"fastest within +{BOUND} bits/char of fp32: {figures}"


def cached_choice(path: Path, device: torch.device) -> dict | None:
    """The cache entry at ``path`` when it is one this code wrote: a regular file of at most
    ``MAX_CACHE_BYTES`` (a symbolic link to a huge or endless file is not read) holding a choice
    among this device's candidates and its reason. Anything else, or nothing, is None: measured
    again."""
    if not path.exists():
        return None
    try:
        saved = json.loads(read_regular_file(path, MAX_CACHE_BYTES, "weights cache entry"))
    except (UserError, ValueError, RecursionError):
        return None
    ok = (
        isinstance(saved, dict)
        and saved.get("weights") in candidates(device)
        and isinstance(saved.get("reason"), str)
    )
    return saved if ok else None


def chosen_kernel(checkpoint: Path, device: torch.device, weights: str) -> str:
    """The decode step's kernel for ``weights``: the faster one ``--weights auto`` measured for
    them on this machine (its cache entry), else the library's (``blas``), as before any
    measurement."""
    saved = (
        cached_choice(cache_file(Path(checkpoint), device), device)
        if Path(checkpoint).is_file()
        else None
    )
    entry = (saved or {}).get(weights)
    kernel = entry.get("kernel") if isinstance(entry, dict) else None
    return kernel if kernel in KERNELS else "blas"


def choose_weights(checkpoint: Path, device: torch.device) -> str:
    """``--weights auto``: the cached choice for this checkpoint and machine, else measured now
    (by ``measure_candidate``, which the tests replace to force a choice with made-up figures)."""
    if not Path(checkpoint).is_file():
        return "fp32"  # load_model says what is wrong with the path
    path = cache_file(Path(checkpoint), device)
    saved = cached_choice(path, device)
    if saved is not None:
        log.info(f"weights: {saved['weights']} ({saved['reason']}; measured before)")
        return saved["weights"]
    model, tok, state = load_model(checkpoint, device, "fp32")
    texts = validation_texts(state)
    if texts is None:
        log.info("weights: fp32 (the run's validation text is not here to check bf16 and int8 on)")
        return "fp32"
    kinds = candidates(device)
    log.info(
        f"weights auto: measuring {', '.join(kinds)} once for this checkpoint and machine "
        "(--weights fp32 skips it)"
    )
    t0 = time.perf_counter()
    measured = {"fp32": measure_candidate(model, tok, texts, device)}
    took = time.perf_counter() - t0
    log.info(  # the others cost about what fp32 did: say so before the wait
        f"weights auto: fp32 measured in {duration(took)}; {', '.join(kinds[1:])} next, "
        f"about {duration(took * (len(kinds) - 1))} more"
    )
    for kind in kinds[1:]:
        model, tok, _ = load_model(checkpoint, device, kind)
        measured[kind] = measure_candidate(model, tok, texts, device)
    chosen, reason = pick(measured)
    try:
        write_json(path, {"weights": chosen, "reason": reason, "machine": machine(), **measured})
    except OSError as exc:  # a cache is a convenience: the choice stands, measured again next time
        log.info(f"weights: could not cache the choice at {path} ({exc.strerror or exc})")
    log.info(f"weights: {chosen} ({reason})")
    return chosen
