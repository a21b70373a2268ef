"""Bad input as users give it: one line naming the problem, exit 2, nothing half-written."""

import json
from pathlib import Path

import pytest
from multi_net_data import plain_clips

from multi_net.cli import main
from shared.errors import UserError
from shared.runs import save_checkpoint
from testkit import assert_clean_failure


def test_bad_inputs(capsys, tmp_path):
    videos, ann, pairs = plain_clips(tmp_path / "plain", n=4)
    one = tmp_path / "one.json"
    one.write_text(json.dumps([{"video_id": "video0", "caption": "alone"}]))
    bad_split = tmp_path / "bad_split.json"
    bad_split.write_text(json.dumps([{"video_id": "video0", "caption": "x", "split": "dev"}]))
    other = save_checkpoint(tmp_path / "o.pt", {"model": {}}, project="audio-net")
    partial = save_checkpoint(tmp_path / "p.pt", {"model": {}}, project="multi-net")
    fake_index = tmp_path / "fake_index.pt"
    import torch

    torch.save({"format": "multi-net-index-v1", "ids": []}, fake_index)
    data = ["--videos", videos, "--annotations", ann, "--cache-dir", tmp_path / "cache"]
    tiny = ["--clip-model", "mn-tiny", "--no-pretrained", "--device", "cpu"]
    cases = [
        (["recommend", "--index", tmp_path / "none.pt", "--text", "x"], "no such file"),
        (["recommend", "--index", ann, "--text", "x"], "not a readable index"),
        (["recommend", "--index", fake_index, "--text", "x"], "lacks paths, embeddings"),
        (["recommend", "--index", fake_index], "exactly one of"),
        (["train", "--batch-size", "1"], "--batch-size: '1' is outside 2.."),
        (["train", "--videos", tmp_path / "nowhere", "--annotations", ann], "does not exist"),
        (["train", *data, "--clip-model", "nope"], "unknown open_clip"),
        (
            ["train", *data, "--clip-model", "mn-tiny", "--clip-weights", tmp_path / "w.bin"],
            "no such file",
        ),
        (["train", "--videos", videos, "--annotations", one, *tiny], "needs at least 2"),
        (["train", "--videos", videos, "--annotations", bad_split, *tiny], "unknown split 'dev'"),
        (["evaluate", "--checkpoint", other], "checkpoint of 'audio-net'"),
        (
            ["index", "--checkpoint", partial, "--videos", videos, "--out", tmp_path / "i.pt"],
            "lacks config, fusion_config",
        ),
        (["index", "--checkpoint", partial, "--videos", videos, "--out", tmp_path], "is a folder"),
        (
            ["index", "--checkpoint", partial, "--videos", videos, "--out", "/proc/i.pt"],
            "cannot write in /proc",
        ),
        (["data", "synth", "--out", tmp_path / "s", "--videos", "20"], "at least 432 clips"),
        (["train", *data, *tiny, "--out", ann], "is a file, not a folder"),
    ]
    for argv, message in cases:
        assert_clean_failure(main, argv, capsys, message, root=tmp_path)
    assert not (tmp_path / "runs").exists() and not (tmp_path / "s").exists()


def test_required_flags(capsys):
    for argv, flag in [(["index"], "--checkpoint"), (["recommend", "--text", "x"], "--index")]:
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2 and flag in capsys.readouterr().err


# --- hostile files and huge inputs ------------------------------------------------------------


def test_every_numeric_flag_is_checked_when_parsed(capsys):
    from multi_net.cli import COMMANDS
    from testkit import assert_numeric_flags_checked

    assert assert_numeric_flags_checked(main, COMMANDS, capsys) > 15


def test_synth_counts_are_checked_before_any_work(capsys, tmp_path):
    out = tmp_path / "s"
    for videos, message in (("1000000000000", "at most 99,999 clips"), ("0", "at least 48")):
        argv = ["data", "synth", "--small", "--out", out, "--videos", videos]
        assert_clean_failure(main, argv, capsys, message, root=tmp_path)
    assert not out.exists()


def test_synth_never_overwrites_a_users_folder(capsys, tmp_path):
    out = tmp_path / "mine"
    (out / "videos").mkdir(parents=True)
    (out / "videos" / "holiday.mp4").write_bytes(b"my video")
    (out / "annotations.json").write_text("[]")
    argv = ["data", "synth", "--small", "--out", out, "--videos", "48", "--quiet"]
    assert_clean_failure(main, argv, capsys, "is not empty", root=tmp_path)
    assert (out / "videos" / "holiday.mp4").read_bytes() == b"my video"
    assert main([str(a) for a in [*argv, "--force"]]) == 0  # replaced whole, not mixed
    assert sorted(p.name for p in (out / "videos").iterdir())[0] == "synth00000.mp4"
    assert not (out / "videos" / "holiday.mp4").exists()
    assert len(json.loads((out / "annotations.json").read_text())) == 48
    assert [p.name for p in tmp_path.iterdir()] == ["mine"]  # no staging folder left
    fresh = tmp_path / "fresh"
    assert main([str(a) for a in [*argv[:-3], "--out", fresh, "--videos", "48", "--quiet"]]) == 0
    assert len(list((fresh / "videos").iterdir())) == 48


def test_bad_clip_weights_are_one_message_without_unsafe_advice(capsys, tmp_path):
    import pickle

    videos, ann, _ = plain_clips(tmp_path / "plain", n=4)
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(b"\x00\x01not weights" * 10)

    class Runs:
        def __reduce__(self):
            return (print, ("code ran",))

    evil = tmp_path / "evil.bin"
    evil.write_bytes(pickle.dumps(Runs()))
    for weights in (garbage, evil):
        argv = ["train", "--videos", videos, "--annotations", ann, "--clip-model", "mn-tiny"]
        argv += ["--clip-weights", weights, "--cache-dir", tmp_path / "cache", "--device", "cpu"]
        line = assert_clean_failure(main, argv, capsys, "not mn-tiny weights that load safely")
        assert "weights_only" not in line
    assert "code ran" not in capsys.readouterr().out


@pytest.mark.parametrize("suffix", [".json", ".csv"])
def test_random_annotation_files_are_one_message(tmp_path, suffix):
    """Whatever bytes or JSON an annotation file holds: parsed annotations or one UserError."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from multi_net.annotations import parse_annotations
    from shared.errors import UserError

    scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
    values = st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
        max_leaves=12,
    )
    keys = st.sampled_from(["video_id", "caption", "captions", "split", "category", "sentences"])
    records = st.lists(st.dictionaries(keys, values, max_size=4), max_size=4)

    @settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
    @given(raw=st.binary(max_size=512), doc=values | records, use_raw=st.booleans())
    def check(raw, doc, use_raw):
        path = tmp_path / f"ann{suffix}"
        if use_raw:
            path.write_bytes(raw)
        elif suffix == ".json":
            path.write_text(json.dumps(doc))
        else:
            rows = doc if isinstance(doc, list) else [doc]
            path.write_text("video,caption\n" + "\n".join(f"{i},{d}" for i, d in enumerate(rows)))
        try:
            parsed = parse_annotations(path)
        except UserError:
            return
        captions = [c for cs in parsed.captions.values() for c in cs]  # what loads is text
        assert all(isinstance(c, str) for c in captions)

    check()


def test_random_and_mutated_indexes_are_one_message(tmp_path):
    import torch
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from multi_net.search import INDEX_FORMAT, load_index
    from shared.errors import UserError

    good = {
        "format": INDEX_FORMAT,
        "checkpoint": "c.pt",
        "videos_root": str(tmp_path),
        "ids": ["a", "b"],
        "paths": [str(tmp_path / "a.mp4"), str(tmp_path / "b.mp4")],
        "embeddings": torch.randn(2, 8),
        "metadata": [{}, {}],
    }
    junk = st.none() | st.integers() | st.text(max_size=4) | st.lists(st.integers(), max_size=3)

    @settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        key=st.sampled_from(sorted(good)),
        value=junk,
        raw=st.binary(max_size=256),
        use_raw=st.booleans(),
    )
    def check(key, value, raw, use_raw):
        path = tmp_path / "i.pt"
        if use_raw:
            path.write_bytes(raw)
        else:
            torch.save({**good, key: value}, path)
        try:
            index = load_index(path)
        except UserError:
            return
        assert len(index["ids"]) == index["embeddings"].shape[0] == len(index["paths"])

    check()


def test_pretrained_weights_offline_are_one_message_at_once(capsys, tmp_path, monkeypatch):
    """Not in the cache and no network: one line with the whole message, naming the offline
    flags, without huggingface_hub's minute of retries (the cache is read with it offline)."""
    import multi_net.encoders as encoders

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache
    monkeypatch.setattr(encoders, "hub_unreachable", lambda: "name or service not known")
    videos, ann, _ = plain_clips(tmp_path / "plain", n=4)
    line = assert_clean_failure(
        main,
        ["train", "--videos", videos, "--annotations", ann, "--clip-model", "ViT-B-32"],
        capsys,
        "not in the local cache and huggingface.co cannot be reached (name or service not known)",
        root=tmp_path,
    )
    assert line.rstrip().endswith("open_clip_pytorch_model.bin")  # whole, not cut mid-word
    assert "--no-pretrained" in line and "--clip-weights PATH" in line
    assert not (tmp_path / "runs").exists()


def test_a_missing_index_is_refused_before_torch_loads(tmp_path):
    """``recommend --index missing.pt``: the message comes before torch or open_clip import."""
    import subprocess
    import sys

    code = (
        "import sys; from multi_net.cli import main; "
        f"rc = main(['recommend', '--index', {str(tmp_path / 'none.pt')!r}, '--text', 'x']); "
        "print(sorted(m for m in ('torch', 'open_clip') if m in sys.modules)); sys.exit(rc)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 2 and "none.pt: no such file" in proc.stderr
    assert proc.stdout.strip() == "[]"


def test_a_demo_never_serves_a_system_root_an_index_records(tmp_path, capsys):
    """An index is a file anyone can hand over: the folder it records is served only inside the
    index's folder or the data/runs roots; `/` and system folders never; else --videos DIR."""
    import tempfile

    import torch

    from multi_net.search import INDEX_FORMAT, servable_files
    from shared.errors import UserError

    def index(root: Path, names: list[str]) -> dict:
        return {
            "format": INDEX_FORMAT,
            "checkpoint": str(tmp_path / "gone.pt"),
            "videos_root": str(root),
            "ids": [Path(n).stem for n in names],
            "paths": names,
            "embeddings": torch.randn(len(names), 8),
            "metadata": [{} for _ in names],
        }

    torch.save(index(Path("/"), ["/etc/passwd"]), tmp_path / "root.pt")
    argv = ["demo", "--index", tmp_path / "root.pt", "--port", "0"]
    assert_clean_failure(main, argv, capsys, "a system folder; refusing to serve files from it")
    assert_clean_failure(main, [*argv, "--videos", "/"], capsys, "--videos /: a system folder")
    etc = index(Path("/etc"), ["/etc/passwd"])
    with pytest.raises(UserError, match="system folder"):
        servable_files(etc, Path("/etc"), tmp_path / "etc.pt")

    elsewhere = Path(tempfile.mkdtemp(prefix="videos-"))  # outside the index's folder and roots
    (elsewhere / "a.mp4").write_bytes(b"x")
    crafted = index(elsewhere, [str(elsewhere / "a.mp4")])
    torch.save(crafted, tmp_path / "elsewhere.pt")
    argv = ["demo", "--index", tmp_path / "elsewhere.pt", "--port", "0"]
    assert_clean_failure(main, argv, capsys, "pass --videos DIR to serve that folder")
    named = servable_files(crafted, elsewhere, tmp_path / "elsewhere.pt")  # the user's word
    assert named == {"a": (elsewhere / "a.mp4").resolve()}
    inside = tmp_path / "videos"  # beside the index: served without --videos
    inside.mkdir()
    (inside / "b.mp4").write_bytes(b"x")
    assert servable_files(index(inside, [str(inside / "b.mp4")]), None, tmp_path / "i.pt")


def test_a_caption_csv_is_read_in_linear_time_and_with_a_bom(tmp_path):
    """A million `video,caption` rows over 96 videos never made a run folder (each caption was
    looked up in a growing list). Four times the rows take under eight times as long (linear:
    about four; the list took sixteen), timed side by side, best of three; a BOM is read."""
    import csv
    import time

    from multi_net.annotations import load_annotations

    def write(n: int) -> Path:
        path = tmp_path / f"{n}.csv"
        with open(path, "w", newline="", encoding="utf-8") as fh:
            out = csv.writer(fh)
            out.writerow(["video", "caption"])
            out.writerows([f"video{i % 96:05d}", f"caption number {i}"] for i in range(n))
        return path

    def best(path: Path) -> float:
        times = []
        for _ in range(3):
            start = time.perf_counter()
            ann = load_annotations([path])
            times.append(time.perf_counter() - start)
        assert len(ann.captions) == 96
        return min(times)

    small, large = write(40_000), write(160_000)
    ratio = best(large) / best(small)
    assert ratio < 8, f"4x the rows took {ratio:.1f}x as long"
    bom = tmp_path / "bom.csv"
    bom.write_text("\ufeffvideo,caption\ncat01.mp4,a cat\ncat01.mp4,a cat\n", encoding="utf-8")
    assert load_annotations([bom]).captions == {"cat01": ["a cat"]}


def test_a_long_caption_is_read_and_a_runaway_cell_is_one_message(tmp_path):
    """A 300 KB caption (over csv's 128 KiB default) is read; a cell over 1 MiB (a quote left
    open swallows the rest of the file) is refused with a message, not csv's traceback."""
    from multi_net.annotations import MAX_CSV_FIELD, load_annotations

    long = tmp_path / "long.csv"
    long.write_text("video,caption\ncat01.mp4,a cat " + "purring " * 40_000 + "\n")
    (caption,) = load_annotations([long]).captions["cat01"]
    assert len(caption) > 300_000
    runaway = tmp_path / "runaway.csv"
    runaway.write_text('video,caption\ncat01.mp4,"an open quote ' + "x" * MAX_CSV_FIELD + "\n")
    with pytest.raises(UserError, match="a cell is over 1 MiB"):
        load_annotations([runaway])


def test_data_sample_into_a_symlink_loop_says_what_it_is(tmp_path, capsys):
    """``data sample --data-dir LOOP`` (a link to itself) said "LOOP: file exists"; every
    project's ``data sample`` now says what the link is, in the same words."""
    from testkit import assert_clean_failure

    loop = tmp_path / "LOOP"
    loop.symlink_to(loop)
    argv = ["data", "sample", "--data-dir", str(loop)]
    assert_clean_failure(main, argv, capsys, "is a symbolic link that leads nowhere (a loop")
    assert not (tmp_path / "synth-sample").exists()
