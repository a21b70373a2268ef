"""`multi-net demo`: type a query, watch the videos it finds; pick a video, see its neighbours.

It serves an index built by `multi-net index` (``--index PATH``; by default the newest
``*.pt`` index under the project's runs folder) with the checkpoint the index was built from
(or ``--checkpoint``). Results are the same as `multi-net recommend` (same exact search).
"""

from __future__ import annotations

from pathlib import Path

import torch

from multi_net.config import DemoConfig
from multi_net.inference import PROJECT, TrainedModel
from multi_net.search import INDEX_FORMAT, ExactSearch, load_index, ranked, servable_files
from shared.checkpoint import run_of
from shared.config import DemoOptions, checked_number
from shared.demo import (
    ServedModel,
    find_run,
    import_gradio,
    model_card,
    read_summary,
    refuse,
    serve,
)
from shared.device import select_device
from shared.errors import UserError
from shared.paths import cache_root, runs_root

COLUMNS = ["rank", "video_id", "score", "caption", "category"]
MAX_QUERY_CHARS = 500


def newest_index() -> Path:
    root = runs_root(PROJECT)
    for path in sorted(
        root.rglob("*.pt") if root.is_dir() else [], key=lambda p: -p.stat().st_mtime
    ):
        if path.parent.name == "checkpoints":
            continue
        try:
            index = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:
            continue
        if isinstance(index, dict) and index.get("format") == INDEX_FORMAT:
            return path
    raise UserError(
        f"no multi-net index under {root}: train with 'multi-net train', build one with "
        "'multi-net index --checkpoint CKPT --videos DIR --out INDEX.pt', then pass --index"
    )


class VideoSearch:
    def __init__(
        self,
        index_path: Path,
        checkpoint: Path | None,
        device: torch.device,
        videos: Path | None = None,
    ) -> None:
        self.index = load_index(index_path)
        self.path = index_path
        self.files = servable_files(self.index, videos, index_path)  # the only files served
        self.checkpoint = Path(checkpoint or self.index["checkpoint"])
        if not self.checkpoint.is_file():
            raise UserError(
                f"the index was built from {self.checkpoint}, which is gone: pass --checkpoint"
            )
        self.model = TrainedModel(self.checkpoint, device)
        self.search = ExactSearch(self.index["embeddings"])

    @torch.no_grad()
    def by_text(self, query: str, k: int) -> list[dict]:
        query = (query or "").strip()
        if not query:
            raise UserError("type what you are looking for, e.g. 'a red square moves left'")
        if len(query) > MAX_QUERY_CHARS:
            raise UserError(
                f"the query has {len(query)} characters; the limit is {MAX_QUERY_CHARS}"
            )
        scores, rows = self.search.search(self.model.text(query).cpu().float(), k)
        return ranked(self.index, scores, rows)

    def by_video(self, video_id: str, k: int) -> list[dict]:
        ids = self.index["ids"]
        if video_id not in ids:
            raise UserError(f"{video_id!r} is not a video of this index")
        row = ids.index(video_id)
        scores, rows = self.search.search(self.index["embeddings"][row].float(), k, exclude=row)
        return ranked(self.index, scores, rows)

    def file_of(self, video_id: str) -> str | None:
        file = self.files.get(video_id)
        return str(file) if file is not None else None


def table(results: list[dict]) -> list[list]:
    return [[r.get(c, "") for c in COLUMNS] for r in results]


def build_app(opts: DemoOptions, index: Path | None, videos: Path | None = None):
    index = index or newest_index()
    device = select_device(opts.device)
    checkpoint = opts.checkpoint
    if opts.run is not None:
        checkpoint = find_run(PROJECT, opts, train_command="multi-net train").checkpoint
    engine = VideoSearch(index, checkpoint, device, videos)
    gr = import_gradio(cache_root(PROJECT) / "demo-uploads")
    served = ServedModel(
        run_of(engine.checkpoint), engine.checkpoint, read_summary(run_of(engine.checkpoint))
    )
    ids = engine.index["ids"]
    with gr.Blocks(title="multi-net demo", analytics_enabled=False) as app:
        model_card(
            gr,
            "multi-net: find videos by what they show and sound like",
            f"Index `{index}`: {len(ids)} videos. Text and videos share one embedding space "
            "(frames, motion and audio fused into one video vector).",
            served,
            str(device),
            ["test_t2v_r1", "test_t2v_r5", "test_v2t_r1", "test_t2v_r1_no_audio", "val_t2v_r1"],
        )
        search_page(gr, opts, engine, ids)
    return app, sorted(engine.files.values())


def search_page(gr, opts: DemoOptions, engine: VideoSearch, ids: list[str]) -> None:
    """A text search, its hits, a player, and the videos nearest the one chosen."""

    def count(k) -> int:  # the slider does not bind an API client: NaN, 0 or 10**9 arrive too
        return checked_number(k, "k", int, low=1, high=len(ids))

    def search(query, k):
        try:
            hits = engine.by_text(query, count(k))
        except UserError as exc:
            raise refuse(gr, str(exc), opts.debug) from exc
        first = hits[0]["video_id"] if hits else None
        return (
            table(hits),
            gr.Dropdown(choices=[h["video_id"] for h in hits], value=first),
            engine.file_of(first) if first else None,
        )

    def similar(video_id, k):
        if not video_id:
            raise refuse(gr, "choose a video first", opts.debug)
        try:
            hits = engine.by_video(video_id, count(k))
        except UserError as exc:
            raise refuse(gr, str(exc), opts.debug) from exc
        return engine.file_of(video_id), table(hits)

    with gr.Row():
        query = gr.Textbox(label="search", placeholder="a red square moves left", scale=4)
        k = gr.Slider(1, min(50, len(ids)), value=min(5, len(ids)), step=1, label="k")
    find = gr.Button("Search", variant="primary")
    hits = gr.Dataframe(headers=COLUMNS, label="results", elem_id="hits", interactive=False)
    with gr.Row():
        chosen = gr.Dropdown(ids, label="video", value=None, allow_custom_value=False)
        player = gr.Video(label="playing", autoplay=True, elem_id="player", height=320)
    neighbours = gr.Dataframe(
        headers=COLUMNS, label="nearest videos", elem_id="neighbours", interactive=False
    )
    find.click(search, [query, k], [hits, chosen, player], api_name="search")
    query.submit(search, [query, k], [hits, chosen, player])
    chosen.input(similar, [chosen, k], [player, neighbours], api_name="similar")


def run_demo(opts: DemoConfig) -> int:
    """``multi-net demo``: the page, served until Ctrl-C."""
    index, videos = opts.index, opts.videos
    # the player may serve the indexed files themselves, nothing else (no folder is allowed)
    app, files = build_app(opts, index, videos)
    return serve(app, opts, allowed_paths=files)  # no upload field: serve's 1 KB upload limit
