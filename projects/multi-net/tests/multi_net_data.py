"""Generated data for multi-net's tests: the small synthetic benchmark (16 attribute combinations)
and a handful of plain clips with captions, so every end-to-end test runs without real data."""

import json

from multi_net.bench import write_test_clip
from multi_net.synth import generate

CAPTIONS = [
    "a red square moves",
    "a blue square slides",
    "a green box travels",
    "a yellow block glides",
    "a purple tile drifts",
    "an orange square moves",
    "a white square slides",
    "a grey box travels",
]


def small_synth(folder, videos: int = 96, seed: int = 0):
    """(videos dir, annotations file) of the 16-combination benchmark."""
    generate(folder, videos, seed, quiet=True, small=True)
    return folder / "videos", folder / "annotations.json"


def plain_clips(folder, n: int = 8, broken: bool = True):
    """``n`` short generated clips with audio, two captions each, categories, and a test-pair CSV
    naming three of them; plus an empty (undecodable) file when ``broken``."""
    videos = folder / "videos"
    videos.mkdir(parents=True)
    for i in range(n):
        write_test_clip(
            videos / f"video{i}.mp4",
            seconds=1.5,
            fps=8,
            size=(96, 72),
            tone_hz=200 + 100 * i,
            seed=i,
        )
    if broken:
        (videos / "video999.mp4").write_bytes(b"")
    records = [
        {
            "video_id": f"video{i}",
            "captions": [CAPTIONS[i % 8], CAPTIONS[i % 8] + " quickly"],
            "category": i % 3,
        }
        for i in range(n)
    ]
    ann = folder / "ann.json"
    ann.write_text(json.dumps(records))
    pairs = folder / "MSRVTT_JSFUSION_test.csv"
    pairs.write_text(
        "key,vid_key,video_id,sentence\n"
        + "".join(f"ret{i},msr{i},video{i},{CAPTIONS[i % 8]}\n" for i in range(n - 3, n))
    )
    return videos, ann, pairs
