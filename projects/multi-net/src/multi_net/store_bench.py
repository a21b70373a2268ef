"""``multi-net bench --store STORE``: one store measured against the exact scan, in one run.

The vectors are synthetic (``--vectors N``, at the model's width) or a real index's (``--index``).
Synthetic ones are drawn the way CLIP's embeddings lie: unit vectors sharing one common direction
(CLIP's embeddings of anything sit in a narrow cone) and grouped in clusters of about 100 around
random centres, so that a query has near neighbours. Uniform random vectors in 512 dimensions have
none (every pair is about orthogonal), and no index's recall on them would mean anything.

Measured: build seconds (adding every vector, and writing the file or flushing the collection),
the memory the store added to this process and its children (resident set, measured after the
build: what the store holds, with what the allocator kept), the median query time alone
(batch 1) and per batch of 64, recall@10 against the exact top 10 of 200 held-out queries, and the
time to add and to remove 100 vectors (then save: a file store rewrites its file).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from multi_net.catalogue import create_store, open_store, store_options
from multi_net.config import BenchConfig
from multi_net.stores import ExactStore, Store
from shared.device import seed_everything
from shared.errors import UserError
from shared.runs import Run

QUERIES = 200
CLUSTER = 100  # vectors per cluster, on average


def clustered_unit_vectors(
    n: int, dim: int, seed: int, clusters: int | None = None
) -> torch.Tensor:
    """``n`` unit vectors: 0.5 of a common direction, 0.6 of one of ``clusters`` random centres and
    0.55 of a random direction, normalised. Nearest neighbours then have a cosine of about 0.7
    and random pairs about 0.28 (CLIP ViT-B/32's video embeddings: about 0.8 and 0.3)."""
    base = torch.Generator().manual_seed(0)  # the same cone and centres for index and queries
    common = F.normalize(torch.randn(dim, generator=base), dim=0)
    clusters = clusters or max(16, n // CLUSTER)
    centres = F.normalize(torch.randn(clusters, dim, generator=base), dim=1)
    g = torch.Generator().manual_seed(seed)
    out = torch.empty(n, dim)
    for start in range(0, n, 65536):
        m = min(65536, n - start)
        which = torch.randint(clusters, (m,), generator=g)
        noise = F.normalize(torch.randn(m, dim, generator=g), dim=1)
        out[start : start + m] = F.normalize(
            0.5 * common + 0.6 * centres[which] + 0.55 * noise, dim=1
        )
    return out


def tree_rss_mb() -> float:
    """Resident memory of this process and its children (Milvus Lite's server), in MB (Linux)."""

    def rss(pid: int) -> int:
        try:
            with open(f"/proc/{pid}/statm") as f:
                pages = int(f.read().split()[1])
            with open(f"/proc/{pid}/task/{pid}/children") as f:
                kids = [int(c) for c in f.read().split()]
        except OSError:
            return 0
        return pages * os.sysconf("SC_PAGE_SIZE") + sum(rss(k) for k in kids)

    return rss(os.getpid()) / 2**20


def timed(fn, *args):
    t0 = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t0


def records(ids: list[str]) -> list[dict]:
    return [
        {"path": f"/videos/{v}.mp4", "has_audio": True, "category": f"c{i % 20}"}
        for i, v in enumerate(ids)
    ]


def query_ms(store: Store, queries: torch.Tensor) -> tuple[float, float, list[list[str]]]:
    """Median ms of one query alone; ms per batch of 64; and every query's top-10 ids."""
    store.search(queries[:1], 10)  # warm-up
    laps = []
    for q in queries[:50]:
        _, dt = timed(store.search, q[None], 10)
        laps.append(dt)
    found, dt64 = [], []
    for start in range(0, len(queries), 64):
        hits, dt = timed(store.search, queries[start : start + 64], 10)
        found += hits
        if len(hits) == 64:
            dt64.append(dt)
    top = [[h["video_id"] for h in hits] for hits in found]
    return 1000 * float(np.median(laps)), 1000 * float(np.median(dt64)), top


def bench_vectors(cfg: BenchConfig) -> tuple[torch.Tensor, torch.Tensor, str]:
    if cfg.index is None:
        dim = 512
        vectors = clustered_unit_vectors(cfg.vectors, dim, seed=cfg.seed + 1)
        queries = clustered_unit_vectors(QUERIES, dim, seed=cfg.seed + 2)
        return vectors, queries, f"synthetic: {cfg.vectors} clustered unit vectors of width {dim}"
    real = open_store(cfg.index, cfg.collection)
    if not isinstance(real, ExactStore):
        raise UserError("bench --store --index reads the vectors of an exact index (a .pt file)")
    emb = F.normalize(real.data["embeddings"].float(), dim=1)
    if len(emb) < 2 * QUERIES:
        raise UserError(f"--index {cfg.index} has {len(emb)} videos; bench needs {2 * QUERIES}")
    g = torch.Generator().manual_seed(cfg.seed)
    order = torch.randperm(len(emb), generator=g)
    return (
        emb[order[QUERIES:]],
        emb[order[:QUERIES]],
        f"real: {cfg.index}, {QUERIES} held out as queries",
    )


def store_bench(cfg: BenchConfig) -> int:
    seed_everything(cfg.seed)
    vectors, queries, source = bench_vectors(cfg)
    n, dim = vectors.shape
    ids = [f"v{i}" for i in range(n)]
    run = Run("multi-net", cfg.out, cfg)
    with tempfile.TemporaryDirectory() as tmp:
        info = {"checkpoint": "bench", "videos_root": None, "dim": dim}
        before = tree_rss_mb()
        exact = ExactStore.create(Path(tmp) / "exact.pt", info)
        _, exact_build_s = timed(lambda: (exact.add(ids, vectors, records(ids)), exact.save()))
        exact_b1, exact_b64, truth = query_ms(exact, queries)  # (builds the int8 copy first)
        exact_ram = tree_rss_mb() - before
        if cfg.store == "exact":
            store, build_s, ram = exact, exact_build_s, exact_ram
        else:
            location = {"faiss": Path(tmp) / "faiss.pt", "milvus": str(Path(tmp) / "bench.db")}
            before = tree_rss_mb()
            options = {"collection": "bench", **store_options(cfg)}
            store = create_store(cfg.store, location[cfg.store], info, options)
            _, build_s = timed(lambda: (store.add(ids, vectors, records(ids)), store.save()))
            ram = tree_rss_mb() - before
        b1, b64, top = query_ms(store, queries)
        recall = sum(len(set(a) & set(b)) for a, b in zip(top, truth, strict=True)) / (
            10 * len(truth)
        )
        extra = [f"new{i}" for i in range(100)]
        more = clustered_unit_vectors(100, dim, cfg.seed + 3)
        # as index --update changes a store: begin (Milvus marks it), the change, save
        _, add_s = timed(
            lambda: (store.begin(), store.add(extra, more, records(extra)), store.save())
        )
        _, remove_s = timed(lambda: (store.begin(), store.remove(extra), store.save()))
        settings = getattr(store, "params", {})
    run.finish(
        {
            "store": cfg.store,
            "vectors": n,
            "dim": dim,
            "data": source,
            "settings": settings,
            "recall_at_10": round(recall, 4),
            "query_ms_batch1": round(b1, 3),
            "query_ms_batch64": round(b64, 2),
            "exact_query_ms_batch1": round(exact_b1, 3),
            "exact_query_ms_batch64": round(exact_b64, 2),
            "speedup_over_exact_batch1": round(exact_b1 / b1, 2),
            "exact_build_s": round(exact_build_s, 2),
            "exact_ram_mb": round(exact_ram, 1),
            "build_s": None if build_s is None else round(build_s, 2),
            "ram_mb": None if ram is None else round(ram, 1),
            "add_ms": round(1000 * add_s, 1),
            "remove_ms": round(1000 * remove_s, 1),
            "threads": torch.get_num_threads(),
        }
    )
    return 0
