"""``--store milvus``: a Milvus collection (pymilvus' ``MilvusClient``).

The URI says where: a local ``.db`` file runs Milvus Lite inside this process; ``http://host:19530``
reaches a Milvus server (Standalone, or Distributed when the catalogue outgrows one machine). The
code is the same for both. One row per video: its id (the primary key), its vector, its file,
whether it has audio, its category (a field of its own, so searches can filter on it) and the rest
of its metadata as JSON. The collection's properties record the checkpoint and the width.

``--milvus-index flat`` (the default) searches exactly: the same top 10 as the exact store;
``hnsw`` is Milvus' graph index, with ``--hnsw-m`` and ``--ef-search`` as for FAISS.
"""

from __future__ import annotations

import json
import logging
import os

import torch

from multi_net.stores import Store, check_new, hit
from shared.errors import UserError

INFO_KEY = "multi_net.info"
FIELDS = ["path", "has_audio", "category", "meta"]
BATCH = 2000  # rows per insert or delete call (well under Milvus' message size)
MAX_PATH, MAX_CATEGORY = 4096, 512


def connect(uri: str):
    # gRPC's core writes to stderr: every fork (the video decoders' worker processes) at INFO, and
    # Milvus Lite's refusal of its keep-alive pings during a long insert as an error it recovers
    # from; what fails reaches the command as an exception (one line)
    os.environ.setdefault("GRPC_VERBOSITY", "NONE")
    try:
        from pymilvus import MilvusClient, MilvusException  # optional: the milvus extra
    except ImportError as exc:
        raise UserError(
            "--store milvus needs pymilvus: uv sync --package multi-net --extra milvus"
        ) from exc
    # pymilvus logs every failed call with its traceback before raising it; the commands say
    # what failed in one line (UserError) instead
    logging.getLogger("pymilvus").setLevel(logging.CRITICAL)
    # Milvus Lite's in-process server logs the calls it does not implement (pymilvus tries them)
    logging.getLogger("grpc._server").setLevel(logging.CRITICAL)
    try:
        # pymilvus pings an idle connection every 10 s; a gRPC server that keeps gRPC's defaults
        # (Milvus Lite's does) takes that as abuse and drops the connection, and the next call on
        # it, or on any new client of that address, fails with "Too many pings"
        return MilvusClient(uri=uri, timeout=30, grpc_options={"grpc.keepalive_time_ms": 300_000})
    except (MilvusException, OSError, RuntimeError) as exc:
        raise UserError(f"{uri}: no Milvus answers there ({reason(exc)})") from exc


def reason(exc: Exception) -> str:
    return str(getattr(exc, "message", None) or exc).strip().splitlines()[0][:200]


class MilvusStore(Store):
    kind = "milvus"

    def __init__(self, client, uri: str, collection: str, info: dict, params: dict) -> None:
        self.client, self.uri, self.collection = client, uri, collection
        self.location = f"{uri} (collection {collection})"
        self.info, self.params = info, params

    @classmethod
    def open(cls, uri: str, collection: str, finishing: bool = False) -> MilvusStore:
        """The collection, refused while an update of it is unfinished unless ``finishing`` (the
        ``index --update`` that finishes it)."""
        client = connect(uri)
        if not client.has_collection(collection):
            raise UserError(
                f"{uri} has no collection {collection!r}: build it with 'multi-net index --store "
                f"milvus --uri {uri}'"
            )
        props = client.describe_collection(collection).get("properties") or {}
        try:
            saved = json.loads(props[INFO_KEY])
            info = {k: saved[k] for k in ("checkpoint", "videos_root", "dim")}
        except (KeyError, TypeError, ValueError) as exc:
            raise UserError(f"{uri}: collection {collection!r} is not a multi-net index") from exc
        if saved.get("unfinished") and not finishing:
            raise UserError(
                f"{uri}: collection {collection!r} is part way through an update that stopped: "
                "run the same 'multi-net index ... --update' again to finish it"
            )
        client.load_collection(collection)  # a collection is searchable once loaded
        return cls(client, uri, collection, info, saved.get("params", {}))

    @classmethod
    def create(cls, uri: str, collection: str, info: dict, options: dict) -> MilvusStore:
        from pymilvus import DataType, MilvusClient  # optional: the milvus extra

        client = connect(uri)
        if client.has_collection(collection):
            raise UserError(
                f"{uri} already has a collection {collection!r}: add --update to bring it in line "
                "with the folder, or name another with --collection"
            )
        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("video_id", DataType.VARCHAR, is_primary=True, max_length=512)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=int(info["dim"]))
        schema.add_field("path", DataType.VARCHAR, max_length=MAX_PATH)
        schema.add_field("has_audio", DataType.BOOL)
        schema.add_field("category", DataType.VARCHAR, max_length=MAX_CATEGORY)
        schema.add_field("meta", DataType.JSON)
        kind = options.get("milvus_index", "flat")
        params = {"milvus_index": kind, "ef_search": int(options.get("ef_search", 128))}
        index = client.prepare_index_params()
        if kind == "hnsw":
            m = int(options.get("hnsw_m", 32))
            index.add_index(
                "vector", index_type="HNSW", metric_type="IP", params={"M": m, "efConstruction": 64}
            )
        else:
            index.add_index("vector", index_type="FLAT", metric_type="IP")
        client.create_collection(collection, schema=schema, index_params=index)
        saved = {**{k: info[k] for k in ("checkpoint", "videos_root")}, "dim": int(info["dim"])}
        store = cls(client, uri, collection, saved, params)
        store.mark(unfinished=True)  # empty until index has added its videos and saved
        return store

    def mark(self, unfinished: bool) -> None:
        """The collection's properties: the model, the folder, the width, the search settings,
        and whether an update of it is under way (Milvus changes rows, not whole collections)."""
        saved = {**self.info, "params": self.params, **({"unfinished": True} if unfinished else {})}
        self.client.alter_collection_properties(
            self.collection, properties={INFO_KEY: json.dumps(saved)}
        )

    def __len__(self) -> int:
        rows = self.client.query(self.collection, filter="", output_fields=["count(*)"])
        return int(rows[0]["count(*)"])

    def paths(self) -> dict[str, str]:
        out: dict[str, str] = {}
        it = self.client.query_iterator(
            self.collection, batch_size=1000, filter="", output_fields=["path"]
        )
        while batch := it.next():
            out.update({r["video_id"]: r["path"] for r in batch})
        it.close()
        return out

    def vector(self, video_id: str) -> torch.Tensor | None:
        rows = self.client.get(self.collection, ids=[video_id], output_fields=["vector"])
        return torch.tensor(rows[0]["vector"]) if rows else None

    def search(self, queries, k, exclude=None, category=None):
        queries = self.check_query(queries)
        if category is not None and len(category) > MAX_CATEGORY:
            return [[] for _ in queries]
        base = [f"category == {json.dumps(category)}"] if category is not None else []
        params = {
            "metric_type": "IP",
            "params": {"ef": max(int(self.params.get("ef_search", 128)), k)},
        }
        groups = (
            [([i], exclude[i]) for i in range(len(queries))]
            if exclude
            else [(range(len(queries)), None)]
        )
        out: list[list[dict]] = [[] for _ in queries]
        for rows, skip in groups:
            expr = " and ".join(base + ([f"video_id != {json.dumps(skip)}"] if skip else []))
            found = self.client.search(
                self.collection,
                data=[queries[i].tolist() for i in rows],
                limit=k,
                filter=expr,
                output_fields=FIELDS,
                search_params=params,
            )
            for i, hits in zip(rows, found, strict=True):
                out[i] = [hit(h["video_id"], h["distance"], self.record(h["entity"])) for h in hits]
        return out

    @staticmethod
    def record(entity: dict) -> dict:
        return {
            "path": entity["path"],
            "category": entity["category"] or None,
            **(entity["meta"] or {}),
        }

    def add(self, ids, vectors, records):
        check_new(self, ids, vectors, records)
        vectors = vectors.float().cpu()
        for start in range(0, len(ids), BATCH):  # rows made a batch at a time: bounded memory
            rows = [
                {
                    "video_id": v,
                    "vector": x.tolist(),
                    "path": r["path"],
                    "has_audio": bool(r.get("has_audio")),
                    "category": r.get("category") or "",
                    "meta": {k: r[k] for k in ("caption", "attributes") if r.get(k) is not None},
                }
                for v, x, r in zip(
                    ids[start : start + BATCH],
                    vectors[start : start + BATCH],
                    records[start : start + BATCH],
                    strict=True,
                )
            ]
            self.client.upsert(self.collection, rows)

    def remove(self, ids):
        ids = list(ids)
        for start in range(0, len(ids), BATCH):
            self.client.delete(self.collection, ids=ids[start : start + BATCH])

    def begin(self) -> None:
        self.mark(unfinished=True)

    def save(self) -> None:
        self.client.flush(self.collection)
        self.mark(unfinished=False)
