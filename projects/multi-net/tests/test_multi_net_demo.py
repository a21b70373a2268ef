"""`multi-net demo`: started as a user would, driven over HTTP (gradio_client) and in Chromium."""

import json
from pathlib import Path

import pytest
import torch

from multi_net.cli import main
from testkit import (
    ServedDemo,
    assert_clean_failure,
    browser_page,
    demo_client,
    offsite_requests,
    raw_call,
    screenshot_dir,
    wait_for_images,
)

TINY = ["--clip-model", "mn-tiny", "--no-pretrained", "--device", "cpu", "--quiet"]


def videos_of(index: Path) -> str:
    """The folder the index was built from: outside the test's data and runs roots, so the demo
    serves it only when named (``--videos``), as a user's own folder would be."""
    return torch.load(index, weights_only=True)["videos_root"]


def recommend(capsys, *args):
    capsys.readouterr()
    assert main(["recommend", *map(str, args)]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])["results"]


def test_served_demo_matches_recommend(indexed, tmp_path, capsys, monkeypatch):
    root, run, index = indexed
    monkeypatch.setenv("DL_RUNS_DIR", str(root / "runs"))  # the index is found there
    text_hits = recommend(capsys, "--index", index, "--text", "a red square", "--k", "4")
    first = text_hits[0]["video_id"]
    video_hits = recommend(capsys, "--index", index, "--video", first, "--k", "3")
    with ServedDemo("multi_net.cli", ["--videos", videos_of(index)], cwd=tmp_path) as demo:
        client = demo_client(demo.url)
        table, chosen, video = client.predict("a red square", 4, api_name="/search")
        assert [row[1] for row in table["data"]] == [h["video_id"] for h in text_hits]
        assert [row[2] for row in table["data"]] == [h["score"] for h in text_hits]
        assert chosen["value"] == first and video is not None  # the top hit plays
        playing, near = client.predict(first, 3, api_name="/similar")
        assert [row[1] for row in near["data"]] == [h["video_id"] for h in video_hits]

        from gradio_client.exceptions import AppError

        with pytest.raises(AppError, match="type what you are looking for"):
            client.predict("   ", 4, api_name="/search")
        with pytest.raises(AppError, match="the limit is"):
            client.predict("a" * 600, 4, api_name="/search")
        assert client.predict("a blue circle", 2, api_name="/search")[0]["data"]
        # the page's slider and dropdown do not bind an API client: one refusal line each
        nan = raw_call(demo.url, "search", '["a red square", NaN]')
        assert "event: error" in nan and "k is not an integer" in nan, nan
        with pytest.raises(AppError):
            client.predict("no-such-video", 3, api_name="/similar")
        with pytest.raises(AppError, match="choose a video first"):
            client.predict(None, 3, api_name="/similar")
        log = demo.output()
    assert "Traceback" not in log and log.count("warning: refused input:") == 5, log
    assert demo.proc.returncode == 143  # SIGTERM, as for every command


def test_no_index_is_one_message(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DL_RUNS_DIR", str(tmp_path / "empty"))
    assert main(["demo"]) == 2
    err = capsys.readouterr().err
    assert "multi-net index" in err and "Traceback" not in err
    assert main(["demo", "--index", str(tmp_path / "missing.pt")]) == 2


def test_browser_searches_and_plays(indexed, tmp_path):
    root, run, index = indexed
    with (
        ServedDemo(
            "multi_net.cli", ["--index", index, "--videos", videos_of(index)], cwd=tmp_path
        ) as demo,
        browser_page(demo.url) as page,
    ):
        page.get_by_label("search").fill("a red square")
        page.get_by_role("button", name="Search", exact=True).click()
        page.locator("#player video").first.wait_for()
        rows = page.locator("#hits").inner_text()
        assert "video" in rows and "Error" not in rows, rows
        wait_for_images(page)
        page.wait_for_function(
            "() => [...document.querySelectorAll('#player video')].every(v => v.readyState >= 2)"
        )
        page.screenshot(path=str(screenshot_dir(tmp_path) / "multi-net-demo.png"), full_page=True)
        assert offsite_requests(page, demo.url) == []


def fetch_status(url: str) -> int:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=600) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def fetch_bytes(url: str) -> bytes:
    import urllib.request

    with urllib.request.urlopen(url, timeout=600) as response:
        return response.read()


def test_only_copies_of_indexed_videos_are_served(indexed, tmp_path):
    """The page plays copies the server made of the indexed videos: no path of the user's is
    served, neither the videos themselves nor their siblings nor a system file."""
    root, run, index = indexed
    idx = torch.load(index, weights_only=True)
    video = idx["paths"][0]
    sibling = Path(video).parent / "notes.txt"
    sibling.write_text("private")
    with ServedDemo(
        "multi_net.cli", ["--index", index, "--videos", videos_of(index)], cwd=tmp_path
    ) as demo:
        playing, _ = demo_client(demo.url).predict(idx["ids"][0], 2, api_name="/similar")
        assert fetch_bytes(playing["url"]) == Path(video).read_bytes()
        base = demo.url + "gradio_api/file="
        for path in (video, str(sibling), "/etc/passwd", str(index), str(run / "config.json")):
            assert fetch_status(base + path) in (403, 404), path
        assert "Traceback" not in demo.output()


def test_a_video_swapped_for_a_link_while_the_demo_runs_is_never_served(indexed, tmp_path):
    """An indexed video replaced, while the demo ran, by a symbolic link to a private file was
    served whole (the allowed files were resolved once, at start). Each request now checks that
    the file is still the one checked at start (no link followed, the same inode): a swapped
    video is refused with one line, and a video played before the swap plays its copy."""
    import shutil

    from gradio_client.exceptions import AppError

    root, run, index = indexed
    idx = torch.load(index, weights_only=True)
    theirs, mine = Path(idx["videos_root"]), tmp_path / "videos"
    shutil.copytree(theirs, mine)
    paths = [str(mine / Path(p).relative_to(theirs)) for p in idx["paths"]]
    torch.save({**idx, "videos_root": str(mine), "paths": paths}, tmp_path / "mine.pt")
    secret = tmp_path / "private.mp4"
    secret.write_bytes(b"SECRET KEY MATERIAL " * 100)
    argv = ["--index", tmp_path / "mine.pt", "--videos", mine]
    with ServedDemo("multi_net.cli", [str(a) for a in argv], cwd=tmp_path) as demo:
        client = demo_client(demo.url)
        played, _ = client.predict(idx["ids"][0], 2, api_name="/similar")
        original = fetch_bytes(played["url"])
        for path in paths[:2]:  # one played before the swap, one not
            Path(path).unlink()
            Path(path).symlink_to(secret)
        again, _ = client.predict(idx["ids"][0], 2, api_name="/similar")
        assert fetch_bytes(again["url"]) == original
        with pytest.raises(AppError, match="changed since the demo started"):
            client.predict(idx["ids"][1], 2, api_name="/similar")
        base = demo.url + "gradio_api/file="
        assert all(fetch_status(base + p) in (403, 404) for p in [*paths[:2], str(secret)])
        log = demo.output()
    assert "Traceback" not in log and "SECRET" not in log


def test_crafted_indexes_are_refused(indexed, tmp_path, capsys):
    root, run, index = indexed
    idx = torch.load(index, weights_only=True)
    outside = {**idx, "paths": ["/etc/passwd", *idx["paths"][1:]]}
    link_dir = tmp_path / "videos"
    link_dir.mkdir()
    (link_dir / "video0.mp4").symlink_to("/etc/passwd")
    linked = {**idx, "videos_root": str(link_dir), "paths": [str(link_dir / "video0.mp4")]}
    linked = {**linked, "ids": idx["ids"][:1], "embeddings": idx["embeddings"][:1]}
    linked["metadata"] = idx["metadata"][:1]
    short = {**idx, "ids": idx["ids"][:-1]}
    nan = {**idx, "embeddings": idx["embeddings"] * float("nan")}
    old = {k: v for k, v in idx.items() if k != "videos_root"}
    # an index saved into a home folder, naming a private key beside it: inside the index's own
    # folder (trusted as a videos root), a regular file, and no video
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "id_rsa").write_text("-----BEGIN OPENSSH PRIVATE KEY-----")
    home = {**idx, "videos_root": str(tmp_path), "paths": [str(tmp_path / ".ssh" / "id_rsa")]}
    home = {**home, "ids": idx["ids"][:1], "embeddings": idx["embeddings"][:1]}
    home["metadata"] = idx["metadata"][:1]
    cases = {
        "home": (home, "names id_rsa, which is not a video file"),
        "outside": (outside, "not inside its videos folder"),
        "symlink": (linked, "not inside its videos folder"),
        "short": (short, "(they must be equal)"),
        "nan": (nan, "NaN or infinity"),
        "old": (old, "records no videos folder"),
        "ids": ({**idx, "ids": [1] * len(idx["ids"])}, "not a non-empty list of names"),
    }
    for name, (payload, message) in cases.items():
        path = tmp_path / f"{name}.pt"
        torch.save(payload, path)
        named = [] if name in ("old", "home") else ["--videos", payload["videos_root"]]
        argv = ["demo", "--index", path, "--port", "0", *named]
        assert_clean_failure(main, argv, capsys, message)
    for name in ("short", "nan", "ids"):
        argv = ["recommend", "--index", tmp_path / f"{name}.pt", "--text", "x"]
        assert_clean_failure(main, argv, capsys, cases[name][1])


def test_crafted_checkpoints_are_refused_before_building(indexed, tmp_path, capsys):
    """Model settings in a checkpoint are bounded and checked against its weights first."""
    root, run, index = indexed
    state = torch.load(run / "checkpoints" / "best.pt", weights_only=True)
    fusion = state["fusion_config"]
    cases = {
        "layers": ({**state, "fusion_config": {**fusion, "fusion_layers": 100000}}, "outside"),
        "width": ({**state, "fusion_config": {**fusion, "fusion_dim": 1024}}, "do not fit"),
        "keys": (
            {**state, "fusion_config": {**fusion, "evil": 1}},
            "its fusion_config is not one this code writes",
        ),
        "frames": ({**state, "decode": {**state["decode"], "size": 10**6}}, "size=1000000"),
        "config": ({**state, "config": "x"}, "damaged checkpoint"),
    }
    for name, (payload, message) in cases.items():
        path = tmp_path / f"{name}.pt"
        torch.save(payload, path)
        argv = ["recommend", "--index", index, "--text", "a red square", "--checkpoint", path]
        assert_clean_failure(main, argv, capsys, message)
