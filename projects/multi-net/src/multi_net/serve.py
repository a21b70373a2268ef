"""``multi-net serve``: search and recommendation over an index, over HTTP for programs.

- ``POST /v1/search`` ``{"text": "a man is playing guitar", "k": 10}``: the videos nearest the
  caption (queries from concurrent requests are encoded together: ``--max-batch``,
  ``--max-wait-ms``);
- ``POST /v1/recommend`` ``{"video": "video7020", "k": 10}``: the videos nearest one in the index.

Each hit is ``recommend``'s record (rank, id, score, path, the video's metadata). ``--index``: the
index built by ``multi-net index`` (default: the newest under the runs folder, as the demo's).
"""

from __future__ import annotations

from pathlib import Path

import torch
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from multi_net.config import BenchConfig, ServeConfig
from multi_net.demo import MAX_QUERY_CHARS, newest_index
from multi_net.inference import PROJECT, TrainedModel
from multi_net.search import ExactSearch, load_index, ranked
from shared.demo import find_run
from shared.device import select_device
from shared.errors import UserError
from shared.serve import Batcher, Metrics, bench_serve, create_app

MAX_K = 1000


class Search(BaseModel):
    text: str = Field(min_length=1, max_length=MAX_QUERY_CHARS)
    k: int = Field(10, ge=1, le=MAX_K)


class Recommend(BaseModel):
    video: str = Field(min_length=1, max_length=1000)
    k: int = Field(10, ge=1, le=MAX_K)


def build_api(cfg: ServeConfig):
    path = cfg.index or newest_index()
    index = load_index(path)
    checkpoint = Path(cfg.checkpoint or index["checkpoint"])
    if cfg.run is not None:
        checkpoint = find_run(PROJECT, cfg, train_command="multi-net train").checkpoint
    if not checkpoint.is_file():
        raise UserError(f"the index was built from {checkpoint}, which is gone: pass --checkpoint")
    device = select_device(cfg.device)
    model = TrainedModel(checkpoint, device)
    search = ExactSearch(index["embeddings"])
    ids = {vid: row for row, vid in enumerate(index["ids"])}
    metrics = Metrics(PROJECT)
    info = {"index": str(path), "videos": len(ids), "checkpoint": str(checkpoint)}
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
        scores, rows = await run_in_threadpool(search.search, query, req.k)
        return {"query": {"text": text}, "results": ranked(index, scores, rows)}

    @app.post("/v1/recommend")
    async def by_video(req: Recommend):
        row = ids.get(req.video)
        if row is None:
            raise UserError(f"video: {req.video[:100]!r} is not a video of this index")
        query = index["embeddings"][row].float()
        scores, rows = await run_in_threadpool(search.search, query, req.k, row)
        return {"query": {"video": req.video}, "results": ranked(index, scores, rows)}

    return app


BENCH_QUERIES = ("a man is playing guitar", "a red square moves left", "people dancing", "a dog")


def serve_bench(cfg: BenchConfig) -> int:
    """``bench --serve``: ``multi-net serve`` on the newest index (or ``--index``), sent text
    searches (k 10) and, every fourth request, a recommendation for an indexed video."""
    path = cfg.index or newest_index()
    ids = load_index(path)["ids"]
    args = ["--index", path]

    def request(i: int) -> tuple[str, dict]:
        if i % 4 == 3:
            return "/v1/recommend", {"video": ids[i % len(ids)], "k": 10}
        return "/v1/search", {"text": BENCH_QUERIES[i % len(BENCH_QUERIES)], "k": 10}

    facts = {"serve_index": str(path), "serve_videos": len(ids)}
    return bench_serve(PROJECT, cfg, args, request, facts)
