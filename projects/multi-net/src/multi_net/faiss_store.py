"""``--store faiss``: an approximate nearest-neighbour index on one machine (faiss-cpu).

- ``hnsw`` (up to ``HNSW_UP_TO`` vectors under ``--faiss-index auto``): a graph over the full
  vectors. ``--hnsw-m`` links per node (memory and build time), ``--ef-search`` candidates kept
  while searching (recall against speed).
- ``ivfpq`` (past it): ``--nlist`` clusters, each vector stored as ``--pq-m`` bytes; a query visits
  the ``--nprobe`` nearest clusters, and the best ``REFINE`` x k candidates are re-scored with an
  8-bit copy of the vectors. About 1/6 of fp32's memory at width 512.

A video's label in the index is its position in the file's lists, which hold its id and record
(so a hit needs no second lookup). FAISS's HNSW cannot delete a vector, so a removed video is a
tombstone: its list entries are emptied and every search passes over it (an ``IDSelector``); once
tombstones are a quarter of the index, saving rebuilds it from the live vectors. The index is
serialized into the same kind of torch file as the exact store's and replaced whole on save.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from multi_net.stores import INDEX_FORMAT, Store, check_new, hit, save_file
from shared.errors import UserError

HNSW_UP_TO = 2_000_000  # --faiss-index auto: HNSW's full vectors fit a machine's memory below
EF_CONSTRUCTION = 64  # candidates kept while linking a new node
REFINE = 4  # IVF-PQ: candidates re-scored with the 8-bit copy, per result asked for
SCAN_BELOW = 50_000  # a filter that leaves fewer rows than this is answered by scanning them
COMPACT_AT = 0.25  # rebuild once this share of the index is tombstones
DEFAULTS = {
    "faiss_index": "auto",
    "hnsw_m": 32,
    "ef_search": 128,
    "nlist": 0,
    "nprobe": 32,
    "pq_m": 0,
}


def require_faiss():
    try:
        import faiss  # optional: the faiss extra
    except ImportError as exc:
        raise UserError(
            "--store faiss needs faiss-cpu: uv sync --package multi-net --extra faiss"
        ) from exc
    return faiss


class FaissStore(Store):
    kind = "faiss"

    def __init__(self, data: dict, path: Path) -> None:
        self.faiss = require_faiss()
        self.data, self.path, self.location = data, Path(path), str(path)
        self.info = {k: data[k] for k in ("checkpoint", "videos_root", "dim")}
        self.params = {**DEFAULTS, **data["params"]}
        self.index = None
        if data["faiss"] is not None:
            try:
                self.index = self.faiss.deserialize_index(data["faiss"].numpy())
            except RuntimeError as exc:
                raise UserError(f"{path} is a damaged multi-net index: its FAISS index") from exc
            if self.index.ntotal != len(data["labels"]) or self.index.d != self.dim:
                raise UserError(f"{path} is a damaged multi-net index: FAISS and its lists differ")
        self._changed()

    @classmethod
    def create(cls, path: Path, info: dict, options: dict) -> FaissStore:
        params = {k: options.get(k, v) for k, v in DEFAULTS.items()}
        data = {
            "format": INDEX_FORMAT,
            "store": "faiss",
            **{k: info[k] for k in ("checkpoint", "videos_root")},
            "dim": int(info["dim"]),
            "params": params,
            "labels": [],  # label -> video id (None: removed)
            "paths": [],
            "has_audio": [],
            "metadata": [],
            "faiss": None,
        }
        return cls(data, path)

    @property
    def index_kind(self) -> str:
        return self.data["params"]["faiss_index"]

    def _changed(self) -> None:
        labels = self.data["labels"]
        self._label = {v: i for i, v in enumerate(labels) if v is not None}
        dead = np.array([i for i, v in enumerate(labels) if v is None], dtype=np.int64)
        self._dead = dead
        self._live_selector = (
            self.faiss.IDSelectorNot(self.faiss.IDSelectorBatch(dead)) if len(dead) else None
        )

    def __len__(self) -> int:
        return len(self._label)

    def paths(self) -> dict[str, str]:
        return {v: self.data["paths"][i] for v, i in self._label.items()}

    def vector(self, video_id: str) -> torch.Tensor | None:
        label = self._label.get(video_id)
        return None if label is None else torch.from_numpy(self.index.reconstruct(label))

    def record(self, label: int) -> dict:
        return {"path": self.data["paths"][label], **self.data["metadata"][label]}

    def _params(self, selector):
        f, p = self.faiss, self.params
        if self.index_kind == "hnsw":
            return f.SearchParametersHNSW(efSearch=int(p["ef_search"]), sel=selector)
        base = f.SearchParametersIVF(nprobe=int(p["nprobe"]), sel=selector)
        return f.IndexRefineSearchParameters(k_factor=REFINE, base_index_params=base)

    def search(self, queries, k, exclude=None, category=None):
        queries = self.check_query(queries).numpy()
        if self.index is None or not len(self):
            return [[] for _ in queries]
        selector, rows = self._live_selector, None
        if category is not None:
            meta = self.data["metadata"]
            rows = np.array(
                [i for i, m in enumerate(meta) if m is not None and m.get("category") == category],
                dtype=np.int64,
            )
            if len(rows) >= SCAN_BELOW:
                selector, rows = self.faiss.IDSelectorBatch(rows), None
        want = min(k + (exclude is not None), len(self))
        if rows is not None:  # a narrow filter: its rows' vectors scanned exactly
            scores, labels = self._scan(queries, rows, want)
        else:
            scores, labels = self.index.search(queries, want, params=self._params(selector))
        out = []
        for i in range(len(queries)):
            skip = exclude[i] if exclude else None
            found = [
                (s, j)
                for s, j in zip(scores[i].tolist(), labels[i].tolist(), strict=True)
                if j >= 0 and self.data["labels"][j] not in (None, skip)
            ]
            out.append([hit(self.data["labels"][j], s, self.record(j)) for s, j in found[:k]])
        return out

    def _scan(self, queries: np.ndarray, rows: np.ndarray, k: int):
        if not len(rows):
            return np.zeros((len(queries), 0)), np.zeros((len(queries), 0), dtype=np.int64)
        vectors = torch.from_numpy(self.index.reconstruct_batch(rows))
        s, i = (torch.from_numpy(queries) @ vectors.T).topk(min(k, len(rows)), dim=1)
        return s.numpy(), rows[i.numpy()]

    def add(self, ids, vectors, records):
        check_new(self, ids, vectors, records)
        if not ids:
            return
        taken = [v for v in ids if v in self._label]
        if taken:
            raise ValueError(f"already in the index: {taken[:3]}")
        x = np.ascontiguousarray(vectors.float().cpu().numpy())
        if self.index is None:
            self.index = self._build(x)
        self.index.add(x)
        d = self.data
        d["labels"] += list(ids)
        d["paths"] += [r["path"] for r in records]
        d["has_audio"] += [bool(r.get("has_audio")) for r in records]
        d["metadata"] += [
            {k: v for k, v in r.items() if k not in ("path", "has_audio")} for r in records
        ]
        self._changed()

    def _build(self, x: np.ndarray):
        """An empty index for vectors like ``x`` (IVF-PQ's clusters and codebooks trained on it)."""
        f, p, dim = self.faiss, self.data["params"], self.dim
        if p["faiss_index"] == "auto":
            p["faiss_index"] = "hnsw" if len(x) <= HNSW_UP_TO else "ivfpq"
        self.params = {**DEFAULTS, **p}
        if p["faiss_index"] == "hnsw":
            index = f.IndexHNSWFlat(dim, int(p["hnsw_m"]), f.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = EF_CONSTRUCTION
            return index
        nlist = int(p["nlist"]) or max(1, min(round(4 * math.sqrt(len(x))), len(x) // 39))
        m = int(p["pq_m"]) or next(m for m in (64, 48, 32, 16, 8, 4, 2, 1) if dim % m == 0)
        if dim % m or len(x) < max(256, nlist):
            raise UserError(
                f"--faiss-index ivfpq needs --pq-m dividing the width {dim} and at least "
                f"{max(256, nlist)} videos to train on (it has {len(x)}): use --faiss-index hnsw"
            )
        p["nlist"], p["pq_m"] = nlist, m
        self.params = {**DEFAULTS, **p}
        quantizer = f.IndexFlatIP(dim)
        ivf = f.IndexIVFPQ(quantizer, dim, nlist, m, 8, f.METRIC_INNER_PRODUCT)
        copy = f.IndexScalarQuantizer(dim, f.ScalarQuantizer.QT_8bit, f.METRIC_INNER_PRODUCT)
        index = f.IndexRefine(ivf, copy)  # (faiss's wrappers keep the parts alive)
        index.train(x)
        return index

    def remove(self, ids):
        d = self.data
        for v in ids:
            label = self._label.get(v)
            if label is not None:
                d["labels"][label] = d["paths"][label] = d["metadata"][label] = None
        self._changed()

    def save(self) -> None:
        d = self.data
        if self.index is not None and len(self._dead) > COMPACT_AT * len(d["labels"]):
            self._compact()
        d["faiss"] = (
            None if self.index is None else torch.from_numpy(self.faiss.serialize_index(self.index))
        )
        try:
            save_file(d, self.path)
        finally:
            d["faiss"] = None  # the index's bytes are on disk: not kept twice in memory

    def _compact(self) -> None:
        """Rebuild from the live vectors (IVF-PQ's from its 8-bit copy); labels renumbered."""
        d = self.data
        live = np.array([i for i, v in enumerate(d["labels"]) if v is not None], dtype=np.int64)
        x = self.index.reconstruct_batch(live) if len(live) else None
        for key in ("labels", "paths", "has_audio", "metadata"):
            d[key] = [d[key][i] for i in live.tolist()]
        self.index = None
        if x is not None:
            self.index = self._build(x)
            self.index.add(x)
        self._changed()
