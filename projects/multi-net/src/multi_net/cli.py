"""Command line of multi-net: one console script, subcommands."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from multi_net.config import (
    BenchConfig,
    DataConfig,
    EvaluateConfig,
    IndexConfig,
    RecommendConfig,
    TrainConfig,
)
from shared.config import Command, UserError, run_cli

PROG = "multi-net"
DESCRIPTION = "Multi-modal video search and recommendation on MSR-VTT."


def train(cfg: TrainConfig) -> int:
    from multi_net.train import train_multi

    run, summary = train_multi(cfg)
    run.finish(summary)
    return 0


def evaluate(cfg: EvaluateConfig) -> int:
    import torch

    from multi_net.dataset import locate, standard_split
    from multi_net.search import Embedder
    from multi_net.train import PROJECT, EncodedData, cache_root, evaluate_pairs
    from shared.device import select_device
    from shared.runs import Run

    if cfg.checkpoint is None:
        raise UserError("evaluate needs --checkpoint PATH")
    device = select_device(cfg.device)
    emb = Embedder(cfg.checkpoint, device)
    data = locate(cfg.videos, cfg.annotations, cfg.data_dir, download=cfg.download, quiet=cfg.quiet)
    _, pairs = standard_split(data, "9k", cfg.seed)
    if not pairs:
        raise UserError("no test pairs among the videos on disk")
    wanted = {v: data.videos[v] for v, _ in pairs}
    from multi_net.features import load_video_features

    feats = load_video_features(
        wanted, emb.params, emb.clip, emb.clip_id, device, cache_root(cfg), quiet=cfg.quiet
    )
    enc = EncodedData(feats, {}, emb.clip, emb.tokenizer, device)
    with torch.no_grad():
        metrics = evaluate_pairs(
            emb.model, enc, pairs, data.ann.categories, emb.clip, emb.tokenizer, device
        )
    run = Run(PROJECT, cfg.out, cfg)
    run.finish({"checkpoint": str(cfg.checkpoint), **metrics})
    return 0


def index(cfg: IndexConfig) -> int:
    from multi_net.annotations import load_annotations
    from multi_net.search import Embedder, build_index
    from shared.device import select_device
    from shared.download import data_root

    if cfg.checkpoint is None or cfg.videos is None or cfg.out is None:
        raise UserError("index needs --checkpoint, --videos DIR and --out INDEX")
    metadata: dict[str, dict] = {}
    if cfg.annotations:
        ann = load_annotations(cfg.annotations)
        for vid in set(ann.captions) | set(ann.categories):
            metadata[vid] = {
                "category": ann.categories.get(vid),
                "caption": (ann.captions.get(vid) or [None])[0],
            }
    emb = Embedder(cfg.checkpoint, select_device(cfg.device))
    cache = cfg.cache_dir or data_root(None) / "cache" / "multi-net"
    print(json.dumps(build_index(emb, cfg.videos, cfg.out, cache, metadata, cfg.quiet)))
    return 0


def recommend(cfg: RecommendConfig) -> int:
    from multi_net.search import Embedder, ExactSearch, load_index
    from shared.device import select_device

    if (cfg.video is None) == (cfg.text is None):
        raise UserError("recommend needs exactly one of --video ID_OR_PATH and --text QUERY")
    if cfg.k < 1:
        raise UserError("--k must be at least 1")
    idx = load_index(cfg.index)
    ids = idx["ids"]
    exclude, query, emb = None, None, None
    if cfg.video is not None and cfg.video in ids:
        exclude = ids.index(cfg.video)
        query = idx["embeddings"][exclude]
    else:
        emb = Embedder(cfg.checkpoint or Path(idx["checkpoint"]), select_device(cfg.device))
        if cfg.text is not None:
            if not cfg.text.strip():
                raise UserError("--text is empty")
            query = emb.text(cfg.text).cpu()
        else:
            path = Path(cfg.video)
            if not path.is_file():
                raise UserError(f"--video {cfg.video}: neither an id in the index nor a video file")
            feats, vectors = emb.videos({path.stem: path}, None)
            if not feats.ids:
                raise UserError(f"--video {path}: cannot decode it")
            query = vectors[0].cpu()
    scores, rows = ExactSearch(idx["embeddings"]).search(query.float(), cfg.k, exclude)
    results = [
        {
            "rank": r + 1,
            "video_id": ids[i],
            "score": round(float(s), 4),
            "path": idx["paths"][i],
            **{k: v for k, v in idx["metadata"][i].items() if v is not None},
        }
        for r, (s, i) in enumerate(zip(scores.tolist(), rows.tolist(), strict=True))
    ]
    print(
        json.dumps(
            {"query": {"video": cfg.video} if cfg.video else {"text": cfg.text}, "results": results}
        )
    )
    return 0


def bench(cfg: BenchConfig) -> int:
    from multi_net.bench import run_bench

    return run_bench(cfg)


def data(cfg: DataConfig) -> int:
    from multi_net.dataset import download_msrvtt, find_videos_dir, msrvtt_root
    from shared.progress import info

    if cfg.action == "download":
        root = download_msrvtt(cfg.data_dir, cfg.quiet)
    else:
        root = msrvtt_root(cfg.data_dir)
    videos = find_videos_dir(root) or find_videos_dir(root / "MSRVTT")
    info(f"MSR-VTT under {root}: videos in {videos}")
    return 0 if videos else 2


COMMANDS = {
    "train": Command(TrainConfig, train, "contrastive training of the fused video embedding"),
    "evaluate": Command(EvaluateConfig, evaluate, "text-video retrieval and category precision"),
    "index": Command(IndexConfig, index, "embed a folder of videos into a search index"),
    "recommend": Command(RecommendConfig, recommend, "nearest videos to a video or a text query"),
    "bench": Command(BenchConfig, bench, "decode, embed and search throughput as JSON"),
    "data": Command(DataConfig, data, "download or check MSR-VTT"),
}


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(PROG, DESCRIPTION, COMMANDS, argv)


if __name__ == "__main__":
    raise SystemExit(main())
