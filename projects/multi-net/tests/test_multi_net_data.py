import csv
import json

import numpy as np
import pytest

from multi_net.annotations import load_annotations, parse_annotations
from multi_net.bench import write_test_clip
from multi_net.video import DecodeCache, DecodeError, DecodeParams, decode_many, decode_video
from shared.config import UserError


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
    with pytest.raises(UserError, match="not an MSR-VTT annotation"):
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
