"""Where a catalogue's video embeddings live, and how they are searched: one interface, three stores.

- ``exact`` (the default, no new dependency): one torch file holding every embedding, searched
  exactly (``search.ExactSearch``: an int8 scan with a proven error bound, then fp32). The right
  choice up to about a million videos on one machine.
- ``faiss`` (``faiss_store``, the ``faiss`` extra): an approximate index in one file, HNSW up to a
  few million vectors, IVF-PQ past that; its knobs trade recall for speed.
- ``milvus`` (``milvus_store``, the ``milvus`` extra): a Milvus collection. A local ``.db`` file
  runs Milvus Lite inside the process; ``http://host:19530`` reaches Milvus Standalone or
  Distributed, with the same code.

Every store keeps each video's record beside its vector (its file, whether it has audio, and the
metadata ``index`` was given: caption, category, attributes), so a hit needs no second lookup, and
each can add and remove videos (``multi-net index --update``). A store records the checkpoint its
vectors came from and their width; a query of another width is refused.
"""

from __future__ import annotations

from pathlib import Path

import torch

from multi_net.search import INDEX_FORMAT, ExactSearch, top_k
from shared.errors import UserError
from shared.files import atomic_path

HIT_FIELDS = ("caption", "category", "attributes")  # the record's metadata a hit carries


def hit(video_id: str, score: float, record: dict) -> dict:
    """A search result as every command prints it (``ranked`` adds the rank)."""
    meta = {k: record[k] for k in HIT_FIELDS if record.get(k) is not None}
    return {"video_id": video_id, "score": round(float(score), 4), "path": record["path"], **meta}


def ranked(hits: list[dict]) -> list[dict]:
    """Hits numbered from 1, as ``recommend``, ``demo`` and ``serve`` give them."""
    return [{"rank": r + 1, **h} for r, h in enumerate(hits)]


class Store:
    """What ``index``, ``recommend``, ``demo``, ``serve`` and ``evaluate`` need of a catalogue."""

    kind: str
    location: str  # the file, or the Milvus URI and collection
    info: dict  # "checkpoint" (the model that embedded it), "videos_root", "dim"

    def __len__(self) -> int:
        raise NotImplementedError

    def paths(self) -> dict[str, str]:
        """Every video id in the store -> its file."""
        raise NotImplementedError

    def vector(self, video_id: str) -> torch.Tensor | None:
        """A stored video's embedding (for "more like this"), or None if it is not stored."""
        raise NotImplementedError

    def search(
        self,
        queries: torch.Tensor,
        k: int,
        exclude: list[str | None] | None = None,
        category: str | None = None,
    ) -> list[list[dict]]:
        """The best ``k`` hits of each query row (inner product of unit vectors), best first,
        leaving out ``exclude[i]`` for query ``i`` and, given a ``category``, every other one."""
        raise NotImplementedError

    def add(self, ids: list[str], vectors: torch.Tensor, records: list[dict]) -> None:
        raise NotImplementedError

    def remove(self, ids: list[str]) -> None:
        raise NotImplementedError

    def begin(self) -> None:
        """Before the first change: a store that cannot take a whole update in one step marks
        itself unfinished (every reader refuses it) until :meth:`save`. A file store changes
        nothing on disk before ``save``."""

    def save(self) -> None:
        """Make the changes last: a file store is replaced whole (never half-written)."""

    @property
    def dim(self) -> int:
        return int(self.info["dim"])

    def check_query(self, queries: torch.Tensor) -> torch.Tensor:
        queries = queries.float().cpu().reshape(-1, queries.shape[-1])
        if queries.shape[1] != self.dim:
            raise UserError(
                f"{self.location} holds {self.dim}-wide vectors of {self.info['checkpoint']}; "
                f"this model gives {queries.shape[1]}-wide ones: use the checkpoint it was built with"
            )
        return queries


def check_new(store: Store, ids: list[str], vectors: torch.Tensor, records: list[dict]) -> None:
    if not (len(ids) == len(vectors) == len(records)):
        raise ValueError("ids, vectors and records must have one row each")
    if len(vectors) and vectors.shape[1] != store.dim:
        raise UserError(
            f"{store.location} holds {store.dim}-wide vectors; these are {vectors.shape[1]}-wide"
        )
    if len(set(ids)) != len(ids):
        raise ValueError("ids repeat")


def check_checkpoint(store: Store, checkpoint: str | Path, remedy: str) -> None:
    """A store answers for the model that embedded it: another checkpoint's vectors do not mix."""
    if str(Path(checkpoint).resolve()) != store.info["checkpoint"]:
        raise UserError(f"{store.location} holds vectors of {store.info['checkpoint']}: {remedy}")


def save_file(data: dict, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(data, tmp)


class ExactStore(Store):
    """Every embedding in one torch file (the format ``multi-net index`` has always written)."""

    kind = "exact"

    def __init__(self, data: dict, path: Path) -> None:
        self.data, self.path, self.location = data, Path(path), str(path)
        self.info = {
            "checkpoint": data["checkpoint"],
            "videos_root": data.get("videos_root"),
            "dim": int(data["embeddings"].shape[1]),
        }
        self._search = None  # ExactSearch, built at the first query after a change
        self._row = {v: i for i, v in enumerate(data["ids"])}

    @classmethod
    def create(cls, path: Path, info: dict) -> ExactStore:
        data = {
            "format": INDEX_FORMAT,
            "store": "exact",
            "checkpoint": info["checkpoint"],
            "videos_root": info["videos_root"],
            "ids": [],
            "paths": [],
            "embeddings": torch.zeros(0, info["dim"]),
            "has_audio": torch.zeros(0, dtype=torch.bool),
            "metadata": [],
        }
        return cls(data, path)

    def __len__(self) -> int:
        return len(self.data["ids"])

    def paths(self) -> dict[str, str]:
        return dict(zip(self.data["ids"], self.data["paths"], strict=True))

    def record(self, row: int) -> dict:
        return {"path": self.data["paths"][row], **self.data["metadata"][row]}

    def vector(self, video_id: str) -> torch.Tensor | None:
        row = self._row.get(video_id)
        return None if row is None else self.data["embeddings"][row].float()

    def search(self, queries, k, exclude=None, category=None):
        queries = self.check_query(queries)
        emb, out = self.data["embeddings"], []
        rows = None
        if category is not None:
            meta = self.data["metadata"]
            rows = torch.tensor([i for i, m in enumerate(meta) if m.get("category") == category])
        elif self._search is None and len(emb):
            self._search = ExactSearch(emb)
        for i, q in enumerate(queries):
            skip = self._row.get(exclude[i]) if exclude else None
            if rows is not None:  # a category: an fp32 scan of its rows
                if not len(rows):
                    out.append([])
                    continue
                inside = None if skip is None else (rows == skip).nonzero().flatten().tolist()
                s, r = top_k(emb[rows].float(), q, k, inside[0] if inside else None)
                r = rows[r]
            elif len(emb) - (skip is not None) <= 0:
                out.append([])
                continue
            else:
                s, r = self._search.search(q, k, skip)
            ids = self.data["ids"]
            out.append(
                [
                    hit(ids[j], sc, self.record(j))
                    for sc, j in zip(s.tolist(), r.tolist(), strict=True)
                ]
            )
        return out

    def add(self, ids, vectors, records):
        check_new(self, ids, vectors, records)
        if not ids:
            return
        d = self.data
        d["ids"] = d["ids"] + list(ids)
        d["paths"] = d["paths"] + [r["path"] for r in records]
        d["embeddings"] = torch.cat([d["embeddings"], vectors.float().cpu()])
        audio = torch.tensor([bool(r.get("has_audio")) for r in records], dtype=torch.bool)
        d["has_audio"] = torch.cat([d["has_audio"], audio])
        d["metadata"] = d["metadata"] + [
            {k: v for k, v in r.items() if k not in ("path", "has_audio")} for r in records
        ]
        self._changed()

    def remove(self, ids):
        gone = set(ids) & set(self._row)
        if not gone:
            return
        keep = [i for i, v in enumerate(self.data["ids"]) if v not in gone]
        d, rows = self.data, torch.tensor(keep, dtype=torch.long)
        for key in ("ids", "paths", "metadata"):
            d[key] = [d[key][i] for i in keep]
        d["embeddings"], d["has_audio"] = d["embeddings"][rows], d["has_audio"][rows]
        self._changed()

    def _changed(self) -> None:
        self._search = None
        self._row = {v: i for i, v in enumerate(self.data["ids"])}

    def save(self) -> None:
        save_file(self.data, self.path)


def listing(store: Store) -> dict:
    """What ``search.servable_files`` checks: the folder a store records and every file in it."""
    paths = store.paths()
    return {
        "videos_root": store.info.get("videos_root"),
        "ids": list(paths),
        "paths": list(paths.values()),
    }
