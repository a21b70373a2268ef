"""``multi-net index`` and ``multi-net recommend``: a catalogue of videos built into a store, kept in
line with its folder (``--update``), and queried.

``index --update`` embeds only the videos new in the folder, adds them and removes the videos gone
from it; nothing already indexed is embedded again. Everything slow (decoding, embedding) happens
before the store is touched, and a file store is replaced whole: an update stopped part way
leaves the index as it was. A Milvus collection changes row by row (the upserts, then the
deletions), so it is marked unfinished first and unmarked last: while marked, every reader
refuses it, and running the same ``--update`` again finishes it.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import torch

from multi_net.annotations import category_name, load_annotations
from multi_net.config import (
    DEFAULT_COLLECTION,
    IndexConfig,
    RecommendConfig,
    StoreOptions,
    is_milvus_uri,
)
from multi_net.features import video_files
from multi_net.inference import PROJECT, TrainedModel
from multi_net.search import load_index
from multi_net.stores import ExactStore, Store, check_checkpoint, ranked
from shared.checkpoint import run_data_settings
from shared.device import select_device
from shared.errors import UserError
from shared.files import runs_root
from shared.runs import check_writable_file


def index(cfg: IndexConfig) -> int:
    """``multi-net index``: a folder of videos embedded into a store (or an existing store
    brought in line with it: ``--update``); prints what changed, as JSON."""
    location = cfg.uri if cfg.store == "milvus" else cfg.out or default_out(cfg.videos)
    paths = video_files(cfg.videos)
    if cfg.update:
        store = open_store(location, cfg.collection, finishing=True)  # refused if not there
        check_same_source(store, cfg)
        have = store.paths()
    else:
        store, have = None, {}
        refuse_existing(cfg, location)  # before any clip is embedded
    if not paths and not cfg.update:
        raise UserError(f"{cfg.videos} holds no videos")
    new = {v: p for v, p in paths.items() if v not in have}
    gone = [v for v in have if v not in paths]
    ids, vectors, records, skipped = embedded(cfg, new)
    if store is None:
        if not ids:
            raise UserError(f"none of the {len(paths)} videos in {cfg.videos} could be decoded")
        info = {
            "checkpoint": str(Path(cfg.checkpoint).resolve()),
            "videos_root": str(Path(cfg.videos).resolve()),
            "dim": int(vectors.shape[1]),
        }
        store = create_store(cfg.store, location, info, store_options(cfg))
    store.begin()
    store.add(ids, vectors, records)
    store.remove(gone)
    store.save()
    result = {"index": store.location, "store": store.kind, "videos": len(store)}
    result |= {"added": len(ids), "removed": len(gone), "skipped": skipped}
    with_audio = sum(r["has_audio"] for r in records)  # of the videos embedded now
    print(json.dumps(result | {"with_audio": with_audio, "dim": store.dim}))
    return 0


def embedded(cfg: IndexConfig, new: dict[str, Path]):
    """The new videos' ids, vectors and records (file, audio, metadata); and how many of them
    could not be decoded. Nothing new: the model is not even loaded."""
    if not new:
        return [], torch.zeros(0, 0), [], 0
    trained = TrainedModel(cfg.checkpoint, select_device(cfg.device))
    # no --annotations: the training run's own, so that hits show captions and categories
    cfg = run_data_settings(cfg, trained.state["config"], ("annotations",), quiet=cfg.quiet)
    feats, vectors = trained.videos(new, cfg.cache_dir, cfg.quiet)
    meta = video_metadata(cfg.annotations)
    records = [
        {"path": str(new[v].resolve()), "has_audio": bool(a), **meta.get(v, {})}
        for v, a in zip(feats.ids, feats.has_audio.tolist(), strict=True)
    ]
    return feats.ids, vectors.float().cpu(), records, len(feats.skipped)


def open_store(
    ref: str | Path, collection: str = DEFAULT_COLLECTION, finishing: bool = False
) -> Store:
    """The store ``--index`` names: a Milvus URI (``http://...`` or a ``.db`` file), else an index
    file from ``multi-net index`` (exact or faiss, as the file says). Damage is one message; so
    is a Milvus collection whose update stopped part way, unless ``finishing`` it."""
    if is_milvus_uri(ref):
        from multi_net.milvus_store import MilvusStore  # optional: the milvus extra

        if str(ref).endswith(".db") and not Path(ref).exists():  # reading never creates one
            raise UserError(f"--index {ref}: no such file (build one with 'multi-net index')")

        return MilvusStore.open(str(ref), collection, finishing)
    data = load_index(Path(ref))
    if data.get("store", "exact") == "faiss":
        from multi_net.faiss_store import FaissStore  # optional: the faiss extra

        return FaissStore(data, Path(ref))
    return ExactStore(data, Path(ref))


def create_store(kind: str, location: str | Path, info: dict, options: dict) -> Store:
    """An empty store of ``kind`` at ``location`` (a file, or a Milvus URI and collection)."""
    if kind == "exact":
        return ExactStore.create(Path(location), info)
    if kind == "faiss":
        from multi_net.faiss_store import FaissStore  # optional: the faiss extra

        return FaissStore.create(Path(location), info, options)
    from multi_net.milvus_store import MilvusStore  # optional: the milvus extra

    return MilvusStore.create(str(location), options["collection"], info, options)


def default_out(videos: Path) -> Path:
    """Under the runs root, where ``demo`` and ``serve`` find the newest index."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return runs_root(PROJECT) / "indexes" / f"{Path(videos).name}-{stamp}.pt"


def refuse_existing(cfg: IndexConfig, location) -> None:
    if cfg.store != "milvus":
        check_writable_file(location, "--out")
        return
    from multi_net.milvus_store import connect  # optional: the milvus extra

    if connect(location).has_collection(cfg.collection):
        raise UserError(
            f"{location} already has a collection {cfg.collection!r}: add --update to bring it "
            "in line with the folder, or name another with --collection"
        )


def check_same_source(store: Store, cfg: IndexConfig) -> None:
    """An update adds vectors of the same model and folder as the ones already stored."""
    check_checkpoint(
        store, cfg.checkpoint, "--update must embed with that checkpoint (or build a new index)"
    )
    root = store.info.get("videos_root")
    if root is not None and str(Path(cfg.videos).resolve()) != root:
        raise UserError(f"{store.location} indexes {root}: --update reads that folder")


def store_options(cfg: StoreOptions) -> dict:
    """The ``--store`` knobs a command was given, by name, with its ``--collection``."""
    names = [f.name for f in dataclasses.fields(StoreOptions)]
    return {"collection": cfg.collection, **{n: getattr(cfg, n) for n in names}}


def video_metadata(annotations: list[Path]) -> dict[str, dict]:
    """Each annotated video's category, first caption and attributes, as hits show them."""
    if not annotations:
        return {}
    ann = load_annotations(annotations)
    return {
        vid: {
            "category": category_name(ann.categories.get(vid), ann),
            "caption": (ann.captions.get(vid) or [None])[0],
            **({"attributes": ann.attributes[vid]} if vid in ann.attributes else {}),
        }
        for vid in set(ann.captions) | set(ann.categories)
    }


def recommend(cfg: RecommendConfig) -> int:
    """``multi-net recommend``: prints the recommendations as one JSON line."""
    print(json.dumps(recommendations(cfg)))
    return 0


def recommendations(cfg: RecommendConfig) -> dict:
    """The top k of a store for a video id, a new video file, or a text query."""
    if (cfg.video is None) == (cfg.text is None):
        raise UserError("recommend needs exactly one of --video ID_OR_PATH and --text QUERY")
    store = open_store(cfg.index, cfg.collection)
    query = store.vector(cfg.video) if cfg.video is not None else None
    exclude = [cfg.video] if query is not None else None  # "more like this" leaves itself out
    if query is None:
        trained = TrainedModel(
            cfg.checkpoint or Path(store.info["checkpoint"]), select_device(cfg.device)
        )
        if cfg.text is not None:
            if not cfg.text.strip():
                raise UserError("--text is empty")
            query = trained.text(cfg.text).cpu()
        else:
            path = Path(cfg.video)
            if not path.is_file():
                raise UserError(f"--video {cfg.video}: neither an id in the index nor a video file")
            feats, vectors = trained.videos({path.stem: path}, None)
            if not feats.ids:
                raise UserError(f"--video {path}: cannot decode it")
            query = vectors[0].cpu()
    hits = store.search(query[None].float(), cfg.k, exclude, category=cfg.category)[0]
    said = {"video": cfg.video} if cfg.video else {"text": cfg.text}
    return {
        "query": said | ({"category": cfg.category} if cfg.category else {}),
        "results": ranked(hits),
    }
