"""``multi-net serve``: search and recommendation over an index, over HTTP for programs.

- ``POST /v1/search`` ``{"text": "a man is playing guitar", "k": 10}``: the videos nearest the
  caption (queries from concurrent requests are encoded together: ``--max-batch``,
  ``--max-wait-ms``);
- ``POST /v1/recommend`` ``{"video": "video7020", "k": 10}``: the videos nearest one in the index.

Both take an optional ``"category"``: only videos of it. Each hit is ``recommend``'s record (rank,
id, score, path, the video's metadata). ``--index``: what ``multi-net index`` built, any store (a
file, or a Milvus URI with ``--collection``; default: the newest file under the runs folder).
"""

from __future__ import annotations

from pathlib import Path

import torch
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from multi_net.catalogue import open_store
from multi_net.config import BenchConfig, ServeConfig
from multi_net.demo import MAX_QUERY_CHARS, newest_index
from multi_net.inference import PROJECT, TrainedModel
from multi_net.stores import ranked
from shared.demo import find_run
from shared.device import select_device
from shared.errors import UserError
from shared.serve import Batcher, Metrics, bench_serve, create_app

MAX_K = 1000


class Search(BaseModel):
    text: str = Field(min_length=1, max_length=MAX_QUERY_CHARS)
    k: int = Field(10, ge=1, le=MAX_K)
    category: str | None = Field(None, min_length=1, max_length=512)


class Recommend(BaseModel):
    video: str = Field(min_length=1, max_length=1000)
    k: int = Field(10, ge=1, le=MAX_K)
    category: str | None = Field(None, min_length=1, max_length=512)


def build_api(cfg: ServeConfig):
    path = cfg.index or newest_index()
    store = open_store(path, cfg.collection)
    checkpoint = Path(cfg.checkpoint or store.info["checkpoint"])
    if cfg.run is not None:
        checkpoint = find_run(PROJECT, cfg, train_command="multi-net train").checkpoint
    if not checkpoint.is_file():
        raise UserError(f"the index was built from {checkpoint}, which is gone: pass --checkpoint")
    device = select_device(cfg.device)
    model = TrainedModel(checkpoint, device)
    metrics = Metrics(PROJECT)
    info = {"index": store.location, "store": store.kind, "videos": len(store)}
    info["checkpoint"] = str(checkpoint)
    app = create_app(PROJECT, info | {"device": str(device)}, metrics, max_body_bytes=65536)

    @torch.no_grad()
    def encode(texts: list[str]) -> list[torch.Tensor]:
        return list(model.texts(texts).cpu().float())

    batcher = Batcher(
        encode, max_batch=cfg.max_batch, max_wait_ms=cfg.max_wait_ms, max_queue=cfg.max_queue
    )
    app.state.workers.append(batcher)
    metrics.gauge("queue_depth", "Queries waiting to be encoded.", lambda: batcher.depth)
    metrics.gauge("batches", "Text encoder passes run.", lambda: batcher.batches)

    @app.post("/v1/search")
    async def by_text(req: Search):
        text = req.text.strip()
        if not text:
            raise UserError("text: say what you are looking for, e.g. 'a man plays guitar'")
        query = await batcher(text)
        hits = await run_in_threadpool(store.search, query[None], req.k, None, req.category)
        said = {"text": text} | ({"category": req.category} if req.category else {})
        return {"query": said, "results": ranked(hits[0])}

    @app.post("/v1/recommend")
    async def by_video(req: Recommend):
        query = await run_in_threadpool(store.vector, req.video)
        if query is None:
            raise UserError(f"video: {req.video[:100]!r} is not a video of this index")
        hits = await run_in_threadpool(store.search, query[None], req.k, [req.video], req.category)
        said = {"video": req.video} | ({"category": req.category} if req.category else {})
        return {"query": said, "results": ranked(hits[0])}

    return app


BENCH_QUERIES = ("a man is playing guitar", "a red square moves left", "people dancing", "a dog")


def serve_bench(cfg: BenchConfig) -> int:
    """``bench --serve``: ``multi-net serve`` on the newest index (or ``--index``), sent text
    searches (k 10) and, every fourth request, a recommendation for an indexed video."""
    path = cfg.index or newest_index()
    ids = list(open_store(path, cfg.collection).paths())
    args = ["--index", path, "--collection", cfg.collection]

    def request(i: int) -> tuple[str, dict]:
        if i % 4 == 3:
            return "/v1/recommend", {"video": ids[i % len(ids)], "k": 10}
        return "/v1/search", {"text": BENCH_QUERIES[i % len(BENCH_QUERIES)], "k": 10}

    facts = {"serve_index": str(path), "serve_videos": len(ids)}
    return bench_serve(PROJECT, cfg, args, request, facts)
