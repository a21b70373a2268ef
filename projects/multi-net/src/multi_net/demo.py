"""`multi-net demo`: type a query, watch the videos it finds; pick a video, see its neighbours.

It serves an index built by `multi-net index` (``--index PATH``; by default the newest
``*.pt`` index under the project's runs folder) with the checkpoint the index was built from
(or ``--checkpoint``). Results are the same as `multi-net recommend` (same exact search).
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import torch

from multi_net.catalogue import open_store
from multi_net.config import DEFAULT_COLLECTION, DemoConfig
from multi_net.inference import PROJECT, TrainedModel
from multi_net.search import INDEX_FORMAT, servable_files
from multi_net.stores import listing, ranked
from shared.checkpoint import run_of
from shared.cli import DemoOptions, checked_number
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
from shared.files import atomic_path, cache_root, runs_root

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
        index: str | Path,
        checkpoint: Path | None,
        device: torch.device,
        videos: Path | None = None,
        collection: str = DEFAULT_COLLECTION,
    ) -> None:
        self.store = open_store(index, collection)
        self.path = Path(index)
        self.ids = list(self.store.paths())
        # the only files served
        self.files = servable_files(listing(self.store), videos, self.path)
        self.identity = {vid: file_identity(f) for vid, f in self.files.items()}
        self.checkpoint = Path(checkpoint or self.store.info["checkpoint"])
        if not self.checkpoint.is_file():
            raise UserError(
                f"the index was built from {self.checkpoint}, which is gone: pass --checkpoint"
            )
        self.model = TrainedModel(self.checkpoint, device)

    @torch.no_grad()
    def by_text(self, query: str, k: int) -> list[dict]:
        query = (query or "").strip()
        if not query:
            raise UserError("type what you are looking for, e.g. 'a red square moves left'")
        if len(query) > MAX_QUERY_CHARS:
            raise UserError(
                f"the query has {len(query)} characters; the limit is {MAX_QUERY_CHARS}"
            )
        return ranked(self.store.search(self.model.text(query)[None], k)[0])

    def by_video(self, video_id: str, k: int) -> list[dict]:
        vector = self.store.vector(video_id)
        if vector is None:
            raise UserError(f"{video_id!r} is not a video of this index")
        return ranked(self.store.search(vector[None], k, exclude=[video_id])[0])

    def file_of(self, video_id: str) -> str | None:
        """A copy of the video for the player, made from the indexed file only while it is the
        file the demo checked at start: opened without following a link, and the same file (its
        device and inode) as then. A file swapped since (a symbolic link to a private file, or
        another file moved into its place) is refused, never served; no indexed path itself is
        ever served (the page fetches copies in the server's own folder, removed when it stops)."""
        file = self.files.get(video_id)
        if file is None:
            return None
        copy = served_copies() / f"{video_id}-{self.identity[video_id][1]}{file.suffix.lower()}"
        if not copy.is_file():
            copy_unchanged(file, self.identity[video_id], copy)
        return str(copy)


def file_identity(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_dev, st.st_ino


def served_copies() -> Path:
    """This server's own folder of the copies it plays (inside its upload folder)."""
    folder = Path(os.environ["GRADIO_TEMP_DIR"]) / "videos"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def copy_unchanged(file: Path, identity: tuple[int, int], copy: Path) -> None:
    """Copy ``file`` to ``copy`` (atomically) if it is still the regular file of ``identity``."""
    changed = UserError(f"{file.name} changed since the demo started: restart the demo to play it")
    try:
        fd = os.open(file, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:  # gone, or now a symbolic link (O_NOFOLLOW refuses it)
        raise changed from exc
    with os.fdopen(fd, "rb") as src:
        st = os.fstat(src.fileno())
        if not stat.S_ISREG(st.st_mode) or (st.st_dev, st.st_ino) != identity:
            raise changed
        with atomic_path(copy) as tmp, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst)


def table(results: list[dict]) -> list[list]:
    return [[r.get(c, "") for c in COLUMNS] for r in results]


def build_app(
    opts: DemoOptions,
    index: str | Path | None,
    videos: Path | None = None,
    collection: str = DEFAULT_COLLECTION,
):
    index = index or newest_index()
    device = select_device(opts.device)
    checkpoint = opts.checkpoint
    if opts.run is not None:
        checkpoint = find_run(PROJECT, opts, train_command="multi-net train").checkpoint
    engine = VideoSearch(index, checkpoint, device, videos, collection)
    gr = import_gradio(cache_root(PROJECT) / "demo-uploads")
    served = ServedModel(
        run_of(engine.checkpoint), engine.checkpoint, read_summary(run_of(engine.checkpoint))
    )
    ids = engine.ids
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
    return app


def search_page(gr, opts: DemoOptions, engine: VideoSearch, ids: list[str]) -> None:
    """A text search, its hits, a player, and the videos nearest the one chosen."""

    def count(k) -> int:  # the slider does not bind an API client: NaN, 0 or 10**9 arrive too
        return checked_number(k, "k", int, low=1, high=len(ids))

    def search(query, k):
        try:
            hits = engine.by_text(query, count(k))
            first = hits[0]["video_id"] if hits else None
            playing = engine.file_of(first) if first else None
        except UserError as exc:
            raise refuse(gr, str(exc), opts.debug) from exc
        return (
            table(hits),
            gr.Dropdown(choices=[h["video_id"] for h in hits], value=first),
            playing,
        )

    def similar(video_id, k):
        if not video_id:
            raise refuse(gr, "choose a video first", opts.debug)
        try:
            hits = engine.by_video(video_id, count(k))
            playing = engine.file_of(video_id)
        except UserError as exc:
            raise refuse(gr, str(exc), opts.debug) from exc
        return playing, table(hits)

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
    # no path is allowed beside the server's own folder: the player plays checked copies
    app = build_app(opts, opts.index, opts.videos, opts.collection)
    return serve(app, opts)  # no upload field: serve's 1 KB upload limit
