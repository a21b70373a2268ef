"""The exact store's search (an int8 scan with a proven error bound, then fp32), the index files'
checks, and which files a server may serve from an index."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from multi_net.features import VIDEO_SUFFIXES
from multi_net.inference import PROJECT
from shared.errors import UserError
from shared.files import data_root, runs_root

INDEX_FORMAT = "multi-net-index-v1"
INDEX_KEYS = ("ids", "paths", "embeddings", "metadata", "checkpoint")
FAISS_KEYS = ("labels", "paths", "has_audio", "metadata", "checkpoint", "dim", "params", "faiss")


def load_index(path: Path) -> dict:
    """An index from ``multi-net index``, checked: a damaged or crafted one is one message."""
    if path is None or not Path(path).is_file():
        raise UserError(f"--index {path}: no such file (build one with 'multi-net index')")
    try:
        index = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise UserError(f"{path} is not a readable index ({exc.__class__.__name__})") from exc
    if not isinstance(index, dict) or index.get("format") != INDEX_FORMAT:
        raise UserError(f"{path} is not a multi-net index")
    faiss = index.get("store") == "faiss"
    missing = [k for k in (FAISS_KEYS if faiss else INDEX_KEYS) if k not in index]
    if missing:
        raise UserError(f"{path} is an incomplete multi-net index: it lacks {', '.join(missing)}")
    (check_faiss_index if faiss else check_index)(index, path)
    return index


def check_faiss_index(index: dict, path: Path) -> None:
    """A FAISS index file's lists describe the same labels; the index itself is read later."""
    labels, lists = index["labels"], [index[k] for k in ("paths", "has_audio", "metadata")]

    def bad(what: str) -> UserError:
        return UserError(f"{path} is a damaged multi-net index: {what}")

    if not isinstance(labels, list) or not all(v is None or isinstance(v, str) for v in labels):
        raise bad("its labels are not a list of names")
    if not all(isinstance(x, list) and len(x) == len(labels) for x in lists):
        raise bad("its lists have different lengths")
    if not isinstance(index["dim"], int) or not 0 < index["dim"] <= 65536:
        raise bad("its width is not a number")
    if not isinstance(index["params"], dict):
        raise bad("its parameters are not a record")
    raw = index["faiss"]
    if raw is not None and (not isinstance(raw, torch.Tensor) or raw.dtype != torch.uint8):
        raise bad("its FAISS index is not bytes")


def check_index(index: dict, path: Path) -> None:
    """Every part of an index describes the same videos, in the same order, with usable values."""
    ids, paths, emb, meta = index["ids"], index["paths"], index["embeddings"], index["metadata"]

    def bad(what: str) -> UserError:
        return UserError(f"{path} is a damaged multi-net index: {what}")

    if not isinstance(ids, list) or not all(isinstance(v, str) for v in ids) or not ids:
        raise bad("its ids are not a non-empty list of names")
    if len(set(ids)) != len(ids):
        raise bad("its ids repeat")
    if not isinstance(paths, list) or not all(isinstance(v, str) for v in paths):
        raise bad("its paths are not a list of file names")
    if not isinstance(meta, list) or not all(isinstance(v, dict) for v in meta):
        raise bad("its metadata is not a list of records")
    if not isinstance(emb, torch.Tensor) or emb.dim() != 2 or not emb.is_floating_point():
        raise bad("its embeddings are not a 2-D float tensor")
    lengths = {
        "ids": len(ids),
        "paths": len(paths),
        "embeddings": emb.shape[0],
        "metadata": len(meta),
    }
    if len(set(lengths.values())) != 1:
        raise bad(", ".join(f"{n} {k}" for k, n in lengths.items()) + " (they must be equal)")
    if not 0 < emb.shape[1] <= 65536 or not torch.isfinite(emb).all():
        raise bad("its embeddings have no width or hold NaN or infinity")
    root = index.get("videos_root")
    if root is not None and not isinstance(root, str):
        raise bad("its videos folder is not a path")


# folders whose files a demo never serves, whoever names them
SYSTEM_FOLDERS = (
    "/etc",
    "/proc",
    "/sys",
    "/dev",
    "/boot",
    "/root",
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
)


def served_root(recorded: str | None, given: Path | None, path: Path) -> Path:
    """The one folder a server may serve videos from. ``--videos DIR`` (``given``) is the user's
    word; a folder recorded in an index is not (an index is a file anyone can hand over), so it
    is taken only inside the index's own folder, the data root or the runs root. A filesystem
    root or a system folder is refused either way."""
    if given is None and recorded is None:
        raise UserError(
            f"{path} records no videos folder (an index of an older version): pass --videos DIR, "
            "the folder it was built from, or build the index again"
        )
    base = Path(given if given is not None else recorded).resolve()
    if base == Path(base.anchor) or any(base.is_relative_to(s) for s in SYSTEM_FOLDERS):
        said = "--videos" if given is not None else f"{path.name} records"
        raise UserError(f"{said} {base}: a system folder; refusing to serve files from it")
    if given is None:
        trusted = (
            *(
                [] if str(path).startswith("http") else [path.resolve().parent]
            ),  # a server: no folder
            data_root().resolve(),
            runs_root(PROJECT).parent.resolve(),
        )
        if not any(base.is_relative_to(t) for t in trusted):
            raise UserError(
                f"{path.name} records its videos under {base}, outside its own folder and the "
                "data and runs roots: pass --videos DIR to serve that folder"
            )
    return base


def servable_files(index: dict, root: Path | None, path: Path) -> dict[str, Path]:
    """Video id -> file, for a server: every indexed file, symlinks resolved, must be a video
    file (by its extension, as ``multi-net index`` reads them) inside the served folder
    (``served_root``). An index naming anything else (``/etc/passwd``, a link out of the folder,
    ``.ssh/id_rsa`` beside an index saved in a home folder) is refused whole."""
    base = served_root(index.get("videos_root"), root, path)
    files = {}
    for vid, name in zip(index["ids"], index["paths"], strict=True):
        file = Path(name).resolve()
        if not file.is_relative_to(base):
            raise UserError(
                f"{path.name} names {Path(name).name}, which is not inside its videos folder "
                f"{base}: refusing to serve it (rebuild the index with 'multi-net index')"
            )
        if not all(p.suffix.lower() in VIDEO_SUFFIXES for p in (Path(name), file)):
            raise UserError(
                f"{path.name} names {Path(name).name}, which is not a video file "
                f"({', '.join(sorted(VIDEO_SUFFIXES))}): refusing to serve it"
            )
        if file.is_file():
            files[vid] = file
    return files


def top_k(
    embeddings: torch.Tensor,
    query: torch.Tensor,
    k: int,
    exclude: int | None = None,
    chunk: int = 262_144,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact inner-product top-k over (N, D) embeddings, in chunks to bound memory."""
    best_s, best_i = None, None
    k = min(k, len(embeddings) - (exclude is not None))
    for start in range(0, len(embeddings), chunk):
        scores = embeddings[start : start + chunk] @ query.to(embeddings.dtype)
        if exclude is not None and start <= exclude < start + chunk:
            scores[exclude - start] = float("-inf")
        s, i = scores.float().topk(min(k, len(scores)))
        i = i + start
        if best_s is None:
            best_s, best_i = s, i
        else:
            merged_s, order = torch.cat([best_s, s]).topk(k)
            best_s, best_i = merged_s, torch.cat([best_i, i])[order]
    return best_s, best_i


class _Int8Scan:
    """Per-row int8 copy of (N, D) unit embeddings, scanned by fbgemm's int8 GEMM (x86 CPUs).

    Rows are quantized with one scale each (``max |x| / 127``); the query is quantized on the fly
    (``reduce_range``: 7 bits, so no int16 saturation on AVX2). A scan reads a quarter of the bytes
    of fp32. ``error_bound(q)`` bounds ``|approx - exact|`` for every row: with w^ and q^ the
    quantized row and query, ``w.q - w^.q^ = (w - w^).q + w^.(q - q^)``, so the error is at most
    ``max ||w - w^||_2 * ||q||_2 + max ||w^||_1 * max |q - q^|``, both maxima measured at build time
    (plus a margin for the fp32 rescaling of the int32 dot products).
    """

    block = 131_072  # fbgemm's prepack is super-linear in the row count: pack blocks, in threads

    def __init__(self, fp32: torch.Tensor) -> None:
        scale = (fp32.abs().amax(1) / 127).clamp_min(1e-12).double()
        blocks = list(range(0, len(fp32), self.block))

        def pack(start: int):
            rows = slice(start, start + self.block)
            w = torch.quantize_per_channel(
                fp32[rows],
                scale[rows],
                torch.zeros(len(scale[rows]), dtype=torch.long),
                0,
                torch.qint8,
            )
            deq = w.dequantize()
            stats = (float((deq - fp32[rows]).norm(dim=1).max()), float(deq.abs().sum(1).max()))
            return torch.ops.quantized.linear_prepack(w, None), stats

        with ThreadPoolExecutor(min(len(blocks), torch.get_num_threads())) as pool:
            packed = list(pool.map(pack, blocks))
        self.packed = [p for p, _ in packed]
        self.row_error = max(s[0] for _, s in packed)
        self.row_l1 = max(s[1] for _, s in packed)

    def scores(self, query: torch.Tensor) -> torch.Tensor:
        q = query[None]
        return torch.cat([torch.ops.quantized.linear_dynamic(q, p, True)[0] for p in self.packed])

    def error_bound(self, query: torch.Tensor) -> float:
        # fbgemm quantizes the query over its range (zero included) with 127 levels: each element
        # is off by at most half a step (the tests check fbgemm against this integer arithmetic)
        step = (max(float(query.max()), 0.0) - min(float(query.min()), 0.0)) / 127
        norm = float(query.norm())
        return self.row_error * norm + self.row_l1 * step / 2 + 1e-5 * (1.0 + norm)


class _Bf16Scan:
    """bf16 copy scanned with a matrix-vector product (GPUs, and CPUs without fbgemm)."""

    def __init__(self, fp32: torch.Tensor) -> None:
        self.bf16 = fp32.to(torch.bfloat16)
        self.row_norm = float(fp32.norm(dim=1).max())

    def scores(self, query: torch.Tensor) -> torch.Tensor:
        return (self.bf16 @ query.to(torch.bfloat16)).float()

    def error_bound(self, query: torch.Tensor) -> float:
        # bf16 keeps 8 significant bits: row and query elements are each off by <= 2^-8 relative,
        # so each product by < 2^-7 (+ 2^-16), and rounding the fp32-accumulated result to bf16
        # adds 2^-8 of the score: < 1.5 * 2^-7 * |row| * |query| in all (Cauchy-Schwarz)
        return 2.0**-6 * self.row_norm * float(query.norm())


def _int8_available(device: torch.device) -> bool:
    return device.type == "cpu" and torch.backends.quantized.engine in ("x86", "fbgemm")


class ExactSearch:
    """Exact top-k over unit-norm embeddings, scanning a low-precision copy.

    A compact copy (int8 through fbgemm on x86 CPUs: a quarter of fp32's bytes; bf16 elsewhere:
    half) gives approximate scores with a proven error bound ``eps``. The best ``probe`` rows by
    approximate score are re-scored in fp32 (any rows would do; the best give the tightest bound);
    the k-th of those exact scores, ``tau``, is a lower bound on the true k-th score, so any row whose approximate score is below ``tau - eps`` cannot
    be in the top k. Every other row is re-scored in fp32 and the top k of those is returned: the
    answer is always exact, and only the number of re-scored rows depends on the data.
    """

    def __init__(self, embeddings: torch.Tensor, scan: str = "auto") -> None:
        self.fp32 = embeddings.float().contiguous()
        if scan not in ("auto", "int8", "bf16"):
            raise ValueError(f"scan must be auto, int8 or bf16, not {scan!r}")
        self.approx: _Int8Scan | _Bf16Scan | None = None
        if scan == "int8" or (scan == "auto" and _int8_available(self.fp32.device)):
            try:
                self.approx, self.scan = _Int8Scan(self.fp32), "int8"
            except (RuntimeError, AttributeError, NotImplementedError):
                if scan == "int8":  # asked for explicitly: say why it cannot be had
                    raise
        if self.approx is None:  # a build without fbgemm's int8 ops keeps the bf16 scan
            self.approx, self.scan = _Bf16Scan(self.fp32), "bf16"
        self.rescored = 0  # rows re-scored in fp32 by the last search

    def search(
        self, query: torch.Tensor, k: int, exclude: int | None = None, probe: int = 64
    ) -> tuple[torch.Tensor, torch.Tensor]:
        n = len(self.fp32)
        k = min(k, n - (exclude is not None))
        query = query.float().to(self.fp32.device)
        if n <= 4 * max(probe, k):  # small, or most of it wanted: a plain scan
            return top_k(self.fp32, query, k, exclude)
        approx = self.approx.scores(query)
        if exclude is not None:
            approx[exclude] = float("-inf")
        # the best `m` rows by approximate score, without a top-k over all n: the m-th best of a
        # strided sample is a threshold that at least m rows pass (a few thousand of them)
        m = max(probe, k + 1)
        sample = approx[:: max(1, n // (1000 * m))]
        theta = sample.topk(m).values[-1]
        passed = (approx >= theta).nonzero().squeeze(1)
        passed_scores = approx[passed]
        first = passed[passed_scores.topk(m).indices]
        tau = self._exact(first, query, exclude).topk(k).values[-1]
        low = float(tau) - self.approx.error_bound(query)
        if low >= float(theta):
            cand = passed[passed_scores >= low]
        else:
            cand = (approx >= low).nonzero().squeeze(1)
        self.rescored = len(cand)
        best, order = self._exact(cand, query, exclude).topk(k)
        return best, cand[order]

    def _exact(self, rows: torch.Tensor, query: torch.Tensor, exclude: int | None):
        scores = self.fp32[rows] @ query
        if exclude is not None:
            scores[rows == exclude] = float("-inf")
        return scores
