import csv
import json

import numpy as np
import pytest

from multi_net.annotations import load_annotations, parse_annotations
from multi_net.bench import write_test_clip
from multi_net.features import decode_cached, video_files
from multi_net.video import DecodeCache, DecodeError, DecodeParams, decode_many, decode_video
from shared.errors import UserError


def test_real_split_files(real_data):
    m = real_data / "msrvtt"
    test = parse_annotations(m / "MSRVTT_JSFUSION_test.csv")
    assert len(test.test_pairs) == 1000 and test.test_pairs[0] == (
        "video9770",
        "a person is connecting something to system",
    )
    train = parse_annotations(m / "MSRVTT_train.9k.csv")
    assert len(train.splits["train"]) == 9000 and train.splits["train"][0] == "video0"
    seven = parse_annotations(m / "MSRVTT_train.7k.csv")
    assert len(seven.splits["train"]) == 7010
    records = parse_annotations(m / "msrvtt_test_1k.json")
    assert len(records.captions) == 1000 and records.categories["video7020"] == 10
    both = load_annotations([m / "MSRVTT_JSFUSION_test.csv", m / "msrvtt_test_1k.json"])
    assert len(both.test_pairs) == 1000 and len(both.categories) == 1000


def test_official_and_generated_formats(tmp_path):
    official = {
        "videos": [
            {"video_id": "video0", "category": 3, "split": "train"},
            {"video_id": "video9", "category": 5, "split": "validate"},
        ],
        "sentences": [
            {"video_id": "video0", "caption": "a dog runs", "sen_id": 0},
            {"video_id": "video0", "caption": "a dog is running", "sen_id": 1},
            {"video_id": "video9", "caption": "news", "sen_id": 2},
        ],
    }
    (tmp_path / "MSRVTT_data.json").write_text(json.dumps(official))
    ann = parse_annotations(tmp_path / "MSRVTT_data.json")
    assert ann.captions["video0"] == ["a dog runs", "a dog is running"] and ann.splits["val"] == [
        "video9"
    ]
    assert ann.categories == {"video0": 3, "video9": 5}
    (tmp_path / "plain.json").write_text(
        json.dumps(
            [
                {"video_id": "v1", "caption": "x", "category": 1},
                {"video_id": "v2", "captions": ["y", "z"]},
            ]
        )
    )
    assert parse_annotations(tmp_path / "plain.json").captions == {"v1": ["x"], "v2": ["y", "z"]}
    with open(tmp_path / "pairs.csv", "w", newline="") as fh:
        csv.writer(fh).writerows(
            [["key", "vid_key", "video_id", "sentence"], ["ret0", "msr1", "video1", "a cat"]]
        )
    assert parse_annotations(tmp_path / "pairs.csv").test_pairs == [("video1", "a cat")]
    (tmp_path / "bad.json").write_text('{"something": 1}')
    with pytest.raises(UserError, match="not an annotation file this program reads"):
        parse_annotations(tmp_path / "bad.json")
    with pytest.raises(UserError, match="does not exist"):
        parse_annotations(tmp_path / "nope.json")


def test_real_clips_decode_without_audio(real_data):
    p = DecodeParams(num_frames=8, size=64)
    paths = sorted((real_data / "msrvtt" / "videos").glob("*.mp4"))
    results = dict(decode_many(paths, p))
    assert len(results) == 5
    for d in results.values():
        assert d.frames.shape == (8, 3, 64, 64) and d.frames.dtype == np.uint8
        assert not d.has_audio and not d.audio.any() and len(d.audio) == 160000
        assert 10 < d.duration < 20
        assert d.frames.std() > 5  # real pictures, not blank frames


def test_generated_clip_with_audio_and_cache(tmp_path):
    clip = write_test_clip(tmp_path / "tone.mp4", seconds=2.0, fps=10, size=(96, 72), tone_hz=440)
    d = decode_video(clip, DecodeParams(num_frames=4, size=32, audio_seconds=3.0))
    assert d.has_audio and d.frames.shape == (4, 3, 32, 32)
    spectrum = np.abs(np.fft.rfft(d.audio[:16000]))
    assert (
        abs(np.argmax(spectrum) * 16000 / 16000 - 440) < 5
    )  # the tone survives resampling to 16 kHz
    assert not d.audio[-8000:].any()  # padded past the 2 s track
    cache = DecodeCache(tmp_path / "cache", DecodeParams(num_frames=4, size=32, audio_seconds=3.0))
    cache.put("tone", d)
    again = cache.get("tone")
    assert np.array_equal(again.frames, d.frames) and again.has_audio


def test_clips_of_one_name_in_two_folders_decode_as_two_videos(tmp_path):
    """``cats/001`` and ``dogs/001`` are two videos: each decoded clip is kept under its own id
    (the 2-second one and the 1-second one), none under the bare file name."""
    for sub, seconds in (("cats", 2.0), ("dogs", 1.0)):
        (tmp_path / sub).mkdir()
        write_test_clip(tmp_path / sub / "001.mp4", seconds=seconds, fps=10, size=(64, 48))
    paths = video_files(tmp_path)
    assert sorted(paths) == ["cats/001", "dogs/001"]
    p = DecodeParams(num_frames=2, size=32, audio_seconds=1.0)
    decoded, skipped = decode_cached(paths, p, DecodeCache(tmp_path / "cache", p), quiet=True)
    assert sorted(decoded) == ["cats/001", "dogs/001"] and not skipped
    assert round(decoded["cats/001"].duration) == 2 and round(decoded["dogs/001"].duration) == 1


def test_corrupt_zero_byte_and_truncated_videos_are_skipped(tmp_path, real_data):
    (tmp_path / "zero.mp4").write_bytes(b"")
    (tmp_path / "junk.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x17" * 500)
    real = (real_data / "msrvtt" / "videos" / "video740.mp4").read_bytes()
    (tmp_path / "truncated.mp4").write_bytes(real[: len(real) // 3])
    p = DecodeParams(num_frames=4, size=32)
    for name in ("zero.mp4", "junk.mp4"):
        with pytest.raises(DecodeError):
            decode_video(tmp_path / name, p)
    results = dict(
        decode_many([tmp_path / n for n in ("zero.mp4", "junk.mp4", "truncated.mp4")], p)
    )
    assert isinstance(results[tmp_path / "zero.mp4"], DecodeError)
    truncated = results[tmp_path / "truncated.mp4"]
    # a truncated MP4 either fails cleanly or yields frames (the moov atom decides): never a crash
    assert isinstance(truncated, DecodeError) or truncated.frames.shape == (4, 3, 32, 32)


def test_synthetic_clips_carry_each_attribute_where_it_belongs(tmp_path):
    from multi_net.synth import COLOURS, DIRECTIONS, SIZE, generate

    info = generate(tmp_path / "s", 48, seed=3, quiet=True, small=True)
    assert info == {
        "out": str(tmp_path / "s"),
        "videos": 48,
        "test": 16,
        "val": 16,
        "train": 16,
        "combinations": 16,
    }
    records = json.loads((tmp_path / "s" / "annotations.json").read_text())
    test_captions = [r["captions"][0] for r in records if r["split"] == "test"]
    assert len(set(test_captions)) == 16  # one clip per combination: captions are unique
    p = DecodeParams(num_frames=4, size=SIZE, audio_seconds=3.0)
    for r in records[:16]:
        a = r["attributes"]
        d = decode_video(tmp_path / "s" / "videos" / f"{r['video_id']}.mp4", p)
        assert d.has_audio == (a["sound"] != "none")  # silent clips have no audio stream at all
        if a["sound"] == "high":
            spectrum = np.abs(np.fft.rfft(d.audio[:16000]))
            assert 1500 < np.argmax(spectrum) < 2000  # ~1760 Hz
        # the shape is the pixels closest to its colour; its centroid moves the stated way
        target = np.array(COLOURS[a["colour"]], np.float32)[:, None, None]
        centroids = []
        for frame in d.frames.astype(np.float32):
            mask = np.linalg.norm(frame - target, axis=0) < 60
            ys, xs = np.nonzero(mask)
            centroids.append((xs.mean(), ys.mean()))
        dx = centroids[-1][0] - centroids[0][0]
        dy = centroids[-1][1] - centroids[0][1]
        vx, vy = DIRECTIONS[a["direction"]]
        assert dx * vx + dy * vy > 10 and abs(dx * vy) + abs(dy * vx) < 6, (a, dx, dy)
        assert any(
            a["colour"] in c and a["shape"] in c and a["direction"] in c for c in r["captions"]
        )


def test_splits_from_records_and_carved_validation(tmp_path):
    from multi_net.dataset import MsrVtt, check_splits, standard_split

    records = [
        {"video_id": f"v{i}", "caption": f"clip {i}", "split": s}
        for i, s in enumerate(["train"] * 6 + ["val"] * 2 + ["test"] * 2)
    ]
    (tmp_path / "a.json").write_text(json.dumps(records))
    videos = {f"v{i}": tmp_path / f"v{i}.mp4" for i in range(10)}
    data = MsrVtt(videos, load_annotations([tmp_path / "a.json"]))
    s = standard_split(data, "all", seed=0)
    assert s.train == [f"v{i}" for i in range(6)]
    assert [v for v, _ in s.val] == ["v6", "v7"] and [v for v, _ in s.test] == ["v8", "v9"]
    # no val split named: 10% of the training videos are carved out (500 of a large set)
    plain = [{"video_id": f"v{i}", "caption": f"clip {i}"} for i in range(40)]
    (tmp_path / "b.json").write_text(json.dumps(plain))
    videos = {f"v{i}": tmp_path / f"v{i}.mp4" for i in range(40)}
    s = standard_split(MsrVtt(videos, load_annotations([tmp_path / "b.json"])), "all", seed=0)
    assert len(s.test) == 4 and len(s.val) == 4 and len(s.train) == 32
    ids = [set(s.train), {v for v, _ in s.val}, {v for v, _ in s.test}]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    check_splits(s)
    s.train = s.train[:1]
    with pytest.raises(UserError, match="at least 2"):
        check_splits(s)
