"""The three stores behind ``multi-net index --store``: the same answers as the exact scan (FAISS
within its recall), a catalogue that grows and shrinks (``--update``), Milvus reached as a server
over http:// exactly as a cluster would be, and every bad input one line."""

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from multi_net.catalogue import create_store, open_store
from multi_net.cli import main
from multi_net.store_bench import clustered_unit_vectors
from multi_net.stores import ExactStore
from testkit.cli_checks import assert_clean_failure
from testkit.served import free_port

pytest.importorskip("faiss")
pytest.importorskip("pymilvus")
pytest.importorskip("milvus_lite")

INFO = {"checkpoint": "c.pt", "videos_root": None, "dim": 64}


@pytest.fixture(scope="module")
def milvus_server(tmp_path_factory):
    """Milvus Lite's own gRPC server on 127.0.0.1, reached through http:// as a cluster is."""
    data = tmp_path_factory.mktemp("milvus-server")
    port = free_port()
    exe = Path(sys.executable).with_name("milvus-lite")
    cmd = [str(exe), "server", "--data-dir", str(data), "--host", "127.0.0.1", "--port", str(port)]
    # its log goes to a file: a pipe nobody reads fills up, and the server then blocks on its next
    # log line in the middle of a request
    log = data / "server.log"
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, text=True)
    try:
        while "listening on" not in log.read_text():  # the server's own word that it listens
            if proc.poll() is not None:
                pytest.fail(f"milvus-lite server ended (exit {proc.returncode}): {log.read_text()}")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        print(f"milvus-lite server wrote {log.stat().st_size:,} bytes of log")


def locations(tmp_path: Path, server: str) -> dict:
    return {
        "exact": tmp_path / "exact.pt",
        "faiss": tmp_path / "faiss.pt",
        "milvus": str(tmp_path / "lite.db"),
        "milvus-server": server,
    }


def run_ok(capsys, argv) -> None:
    """A command that must succeed; if it does not, the failure shows what it printed."""
    code = main([str(a) for a in argv])
    if code != 0:
        pytest.fail(f"multi-net {argv[0]} exited {code}: {capsys.readouterr().err[-3000:]}")


def records(ids):
    return [
        {
            "path": f"/v/{v}.mp4",
            "has_audio": i % 2 == 0,
            "category": f"c{i % 4}",
            "caption": f"clip {v}",
        }
        for i, v in enumerate(ids)
    ]


@pytest.mark.parametrize("where", ["exact", "faiss", "milvus", "milvus-server"])
def test_each_store_answers_as_the_exact_scan_and_follows_adds_and_removes(
    where, tmp_path, milvus_server
):
    vectors = clustered_unit_vectors(3000, 64, seed=1, clusters=40)
    queries = clustered_unit_vectors(50, 64, seed=2, clusters=40)
    ids = [f"v{i}" for i in range(len(vectors))]
    exact = ExactStore.create(tmp_path / "truth.pt", INFO)
    exact.add(ids, vectors, records(ids))
    truth = [[h["video_id"] for h in hits] for hits in exact.search(queries, 10)]

    kind = where.split("-")[0]
    location = locations(tmp_path, milvus_server)[where]
    collection = f"t_{where.replace('-', '_')}_{time.monotonic_ns()}"
    store = create_store(kind, location, INFO, {"collection": collection})
    store.add(ids, vectors, records(ids))
    store.save()
    store = open_store(location, collection)  # as a later command finds it
    assert len(store) == 3000 and store.kind == kind
    got = [[h["video_id"] for h in hits] for hits in store.search(queries, 10)]
    overlap = sum(len(set(a) & set(b)) for a, b in zip(got, truth, strict=True)) / 500
    if kind == "faiss":
        assert overlap >= 0.95, overlap
    else:  # exact, and Milvus' FLAT index: the same ten
        assert overlap == 1.0, overlap
    first = store.search(queries[:1], 3)[0][0]
    assert first["path"] == f"/v/{first['video_id']}.mp4" and first["caption"].startswith("clip")

    # "more like this" leaves the video out; a category keeps to it
    mine = store.vector("v7")
    assert torch.allclose(mine, vectors[7], atol=1e-2)
    near = store.search(mine[None], 5, exclude=["v7"])[0]
    assert len(near) == 5 and "v7" not in [h["video_id"] for h in near]
    music = store.search(queries[:2], 5, category="c1")
    assert all(h["category"] == "c1" for hits in music for h in hits) and len(music[0]) == 5
    assert store.search(queries[:1], 5, category="no such")[0] == []

    # a catalogue that changes: the best hit of a query removed, a new video exactly at it added
    best = got[0][0]
    store.remove([best])
    store.add(["fresh"], queries[:1], records(["fresh"]))
    store.save()
    store = open_store(location, collection)
    assert len(store) == 3000
    top = [h["video_id"] for h in store.search(queries[:1], 10)[0]]
    assert top[0] == "fresh" and best not in top
    assert store.vector(best) is None and best not in store.paths()
    assert store.paths()["fresh"] == "/v/fresh.mp4"


def test_faiss_rebuilds_once_a_quarter_is_tombstones(tmp_path):
    vectors = clustered_unit_vectors(2000, 64, seed=3, clusters=30)
    ids = [f"v{i}" for i in range(2000)]
    store = create_store("faiss", tmp_path / "f.pt", INFO, {})
    store.add(ids, vectors, records(ids))
    store.remove(ids[:400])  # 20%: tombstones, passed over
    store.save()
    store = open_store(tmp_path / "f.pt")
    assert len(store.data["labels"]) == 2000 and len(store) == 1600
    store.remove(ids[400:700])  # 35%: rebuilt from the live vectors, labels renumbered
    store.save()
    store = open_store(tmp_path / "f.pt")
    assert len(store.data["labels"]) == 1300 == len(store) == store.index.ntotal
    hits = store.search(vectors[1000:1001], 1)[0]
    assert hits[0]["video_id"] == "v1000" and hits[0]["score"] > 0.99


def test_ivfpq_past_its_training_size(tmp_path):
    vectors = clustered_unit_vectors(20_000, 64, seed=4)
    queries = clustered_unit_vectors(40, 64, seed=5)
    ids = [f"v{i}" for i in range(len(vectors))]
    exact = ExactStore.create(tmp_path / "e.pt", INFO)
    exact.add(ids, vectors, records(ids))
    store = create_store("faiss", tmp_path / "f.pt", INFO, {"faiss_index": "ivfpq", "nprobe": 16})
    store.add(ids, vectors, records(ids))
    store.save()
    store = open_store(tmp_path / "f.pt")
    assert store.params["faiss_index"] == "ivfpq" and store.params["pq_m"] == 64 // 8 * 8
    truth = exact.search(queries, 10)
    got = store.search(queries, 10)
    overlap = sum(
        len({h["video_id"] for h in a} & {h["video_id"] for h in b})
        for a, b in zip(got, truth, strict=True)
    )
    assert overlap / 400 >= 0.9, overlap / 400
    store.remove(ids[:10])
    assert not {h["video_id"] for h in store.search(vectors[:10], 5)[0]} & set(ids[:10])


def test_a_query_of_another_width_is_one_message(tmp_path):
    from shared.errors import UserError

    store = create_store("faiss", tmp_path / "f.pt", INFO, {})
    store.add(["a"], torch.nn.functional.normalize(torch.randn(1, 64), dim=1), records(["a"]))
    with pytest.raises(UserError, match="holds 64-wide vectors of c.pt; this model gives 32"):
        store.search(torch.randn(1, 32), 3)


def copy_clips(src: Path, dst: Path, names) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    for n in names:
        shutil.copy(src / f"{n}.mp4", dst / f"{n}.mp4")
    return dst


def last_json(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


@pytest.mark.parametrize("where", ["exact", "faiss", "milvus", "milvus-server"])
def test_index_update_then_search_for_each_store(where, indexed, tmp_path, capsys, milvus_server):
    """Build on part of a folder, grow and shrink the folder, ``index --update``: only the new
    videos are embedded, the gone ones leave, and recommend (and evaluate) see the change."""
    root, run, _ = indexed
    ckpt = run / "checkpoints" / "best.pt"
    folder = copy_clips(
        root / "plain" / "videos", tmp_path / "mine", [f"video{i}" for i in range(10)]
    )
    kind = where.split("-")[0]
    location = locations(tmp_path, milvus_server)[where]
    collection = f"u_{where.replace('-', '_')}_{time.monotonic_ns()}"
    target = (
        ["--uri", location, "--collection", collection] if kind == "milvus" else ["--out", location]
    )
    argv = ["index", "--checkpoint", ckpt, "--videos", folder, "--store", kind, *target]
    argv += ["--annotations", root / "plain" / "ann.json", "--cache-dir", tmp_path / "cache"]
    argv += ["--device", "cpu", "--quiet"]
    run_ok(capsys, argv)
    built = last_json(capsys)
    assert (built["store"], built["videos"], built["added"], built["removed"]) == (kind, 10, 10, 0)
    reader = ["--index", location, "--collection", collection]

    (folder / "video2.mp4").unlink()
    (folder / "video5.mp4").unlink()
    copy_clips(root / "plain" / "videos", folder, ["video12", "video13", "video14"])
    calls = []
    import multi_net.inference as inference

    real = inference.TrainedModel.videos

    def counted(self, paths, *a, **k):
        calls.append(sorted(paths))
        return real(self, paths, *a, **k)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(inference.TrainedModel, "videos", counted)
        run_ok(capsys, [*argv, "--update"])
    updated = last_json(capsys)
    assert (updated["videos"], updated["added"], updated["removed"]) == (11, 3, 2)
    assert calls == [["video12", "video13", "video14"]]  # nothing already indexed embedded again

    run_ok(capsys, ["recommend", *reader, "--video", "video12", "--k", "20"])
    found = [h["video_id"] for h in last_json(capsys)["results"]]
    assert len(found) == 10 and "video12" not in found
    assert {"video13", "video14"} <= set(found) and not {"video2", "video5"} & set(found)
    gone = ["recommend", *reader, "--video", "video2", "--device", "cpu"]
    assert_clean_failure(main, gone, capsys, "--video video2: neither an id in the index")
    run_ok(capsys, ["recommend", *reader, "--text", "a red square", "--k", "3"])
    assert len(last_json(capsys)["results"]) == 3
    # evaluate through the store: each caption's own video among its top 10 of the catalogue
    ev = ["evaluate", "--checkpoint", ckpt, "--videos", folder, "--split", "all", *reader]
    ev += ["--annotations", root / "plain" / "ann.json"]
    ev += [
        "--cache-dir",
        tmp_path / "cache",
        "--device",
        "cpu",
        "--quiet",
        "--out",
        tmp_path / "ev",
    ]
    run_ok(capsys, ev)
    scored = last_json(capsys)
    assert scored["index_store"] == kind and scored["index_videos"] == 11
    assert scored["index_pairs"] == 11 and 0 <= scored["index_t2v_r1"] <= scored["index_t2v_r10"]

    # the demo's engine on the same store: a query and "more like this"
    from multi_net.demo import VideoSearch

    engine = VideoSearch(location, None, torch.device("cpu"), folder, collection)
    assert sorted(engine.ids) == sorted(f.stem for f in folder.glob("*.mp4"))
    assert [h["rank"] for h in engine.by_text("a red square", 3)] == [1, 2, 3]
    assert "video12" not in [h["video_id"] for h in engine.by_video("video12", 5)]

    # nothing changed: nothing embedded, nothing written
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(inference.TrainedModel, "videos", counted)
        run_ok(capsys, [*argv, "--update"])
    again = last_json(capsys)
    assert (again["videos"], again["added"], again["removed"]) == (11, 0, 0) and len(calls) == 1


def test_an_interrupted_update_leaves_the_index_as_it_was(indexed, tmp_path, capsys):
    root, run, _ = indexed
    ckpt = run / "checkpoints" / "best.pt"
    folder = copy_clips(
        root / "plain" / "videos", tmp_path / "mine", [f"video{i}" for i in range(6)]
    )
    for kind in ("exact", "faiss"):
        out = tmp_path / f"{kind}.pt"
        argv = ["index", "--checkpoint", ckpt, "--videos", folder, "--store", kind, "--out", out]
        argv += ["--cache-dir", tmp_path / "cache", "--device", "cpu", "--quiet"]
        run_ok(capsys, argv)
        capsys.readouterr()
        before = out.read_bytes()
        copy_clips(root / "plain" / "videos", folder, ["video20"])
        import multi_net.catalogue as catalogue

        def stopped(*a, **k):
            raise KeyboardInterrupt

        with pytest.MonkeyPatch.context() as mp:  # Ctrl-C while the new video is embedded
            mp.setattr(catalogue, "embedded", stopped)
            assert main([str(a) for a in [*argv, "--update"]]) == 130
        with pytest.MonkeyPatch.context() as mp:  # the disk fills while the file is written
            mp.setattr(torch, "save", disk_full)
            assert main([str(a) for a in [*argv, "--update"]]) == 2
        assert out.read_bytes() == before and not list(tmp_path.glob(".*.tmp"))
        (folder / "video20.mp4").unlink()
        capsys.readouterr()


def test_an_interrupted_milvus_update_is_refused_until_run_again(indexed, tmp_path, capsys):
    """Milvus changes row by row: an update stopped between its upsert and its deletions leaves
    the collection marked, every reader refuses it in one line, and the same ``--update`` run
    again finishes it (nothing embedded twice)."""
    root, run, _ = indexed
    ckpt = run / "checkpoints" / "best.pt"
    folder = copy_clips(
        root / "plain" / "videos", tmp_path / "mine", [f"video{i}" for i in range(6)]
    )
    lite = tmp_path / "lite.db"
    argv = ["index", "--checkpoint", ckpt, "--videos", folder, "--store", "milvus", "--uri", lite]
    argv += ["--cache-dir", tmp_path / "cache", "--device", "cpu", "--quiet"]
    run_ok(capsys, argv)
    capsys.readouterr()
    copy_clips(root / "plain" / "videos", folder, ["video20"])
    (folder / "video3.mp4").unlink()
    from multi_net.milvus_store import MilvusStore

    def stopped(*a, **k):
        raise KeyboardInterrupt

    with pytest.MonkeyPatch.context() as mp:  # Ctrl-C after the upsert, before the deletions
        mp.setattr(MilvusStore, "remove", stopped)
        assert main([str(a) for a in [*argv, "--update"]]) == 130
    reader = ["recommend", "--index", lite, "--text", "a red square", "--device", "cpu"]
    assert_clean_failure(main, reader, capsys, "part way through an update that stopped")
    run_ok(capsys, [*argv, "--update"])
    finished = last_json(capsys)
    assert (finished["videos"], finished["added"], finished["removed"]) == (6, 0, 1)
    run_ok(capsys, [*reader, "--k", "10"])
    found = {h["video_id"] for h in last_json(capsys)["results"]}
    assert "video20" in found and "video3" not in found and len(found) == 6


def disk_full(*a, **k):
    raise OSError(28, "No space left on device")


def test_bad_stores_are_one_line(indexed, tmp_path, capsys):
    root, run, index = indexed
    ckpt = run / "checkpoints" / "best.pt"
    closed = f"http://127.0.0.1:{free_port()}"
    assert_clean_failure(
        main, ["recommend", "--index", closed, "--text", "x"], capsys, "no Milvus answers there"
    )
    videos = root / "plain" / "videos"
    argv = ["index", "--checkpoint", ckpt, "--videos", videos, "--store", "milvus", "--uri", closed]
    assert_clean_failure(main, argv, capsys, "no Milvus answers there")
    # a collection that is not there, and a .db file that is not there (never created by reading)
    lite = tmp_path / "lite.db"
    assert_clean_failure(
        main, ["recommend", "--index", lite, "--text", "x"], capsys, "lite.db: no such file"
    )
    assert not lite.exists()
    # a damaged FAISS index
    store = create_store("faiss", tmp_path / "f.pt", INFO, {})
    store.add(["a"], torch.nn.functional.normalize(torch.randn(1, 64), dim=1), records(["a"]))
    store.save()
    data = torch.load(tmp_path / "f.pt", weights_only=True)
    data["faiss"] = torch.randint(0, 255, (500,), dtype=torch.uint8)
    torch.save(data, tmp_path / "f.pt")
    assert_clean_failure(
        main, ["recommend", "--index", tmp_path / "f.pt", "--text", "x"], capsys, "damaged"
    )
    # an index of another model's vectors: --update with another checkpoint is refused
    argv = ["index", "--checkpoint", ckpt, "--videos", videos, "--out", index, "--update"]
    other = tmp_path / "other.pt"
    shutil.copy(ckpt, other)
    argv[2] = other
    assert_clean_failure(main, argv, capsys, "--update must embed with that checkpoint")
    ev = ["evaluate", "--checkpoint", other, "--videos", videos, "--split", "all", "--index", index]
    ev += ["--annotations", root / "plain" / "ann.json", "--device", "cpu", "--out", tmp_path / "e"]
    import multi_net.inference as inference

    with pytest.MonkeyPatch.context() as mp:  # refused before a single video is decoded
        mp.setattr(inference.TrainedModel, "features", lambda *a, **k: pytest.fail("decoded"))
        assert_clean_failure(main, ev, capsys, "evaluate that checkpoint with it")
    # an id that is not in the index, and flags that do not fit the store
    assert_clean_failure(
        main, ["recommend", "--index", index, "--video", "video404"], capsys, "neither an id"
    )
    bad = ["index", "--checkpoint", ckpt, "--videos", videos, "--store", "milvus", "--out", "x.pt"]
    assert_clean_failure(main, bad, capsys, "--store milvus needs --uri")
    bad = ["index", "--checkpoint", ckpt, "--videos", videos, "--uri", "x.db"]
    assert_clean_failure(main, bad, capsys, "add --store milvus")
