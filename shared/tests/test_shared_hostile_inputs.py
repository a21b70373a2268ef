"""Inputs from outside, third pass: demo uploads bounded, input errors one short line without
server paths, text that is not valid UTF-8, and a killed save's temporaries."""

import fcntl
import os
import time

from shared import demo
from shared.runs import lock_run_dir, tidy_interrupted, unlock_run_dir
from shared.text import valid_text


def test_uploads_are_pruned_by_age_then_oldest_first(tmp_path, monkeypatch):
    folder = tmp_path / "server-1"
    (folder / "a").mkdir(parents=True)
    monkeypatch.setattr(demo, "_server_uploads", [folder])
    now = time.time()
    files = {}
    for name, age, size in [("old", 1200, 10), ("mid", 300, 600), ("new", 10, 600)]:
        files[name] = folder / "a" / f"{name}.wav"
        files[name].write_bytes(b"x" * size)
        os.utime(files[name], (now - age, now - age))
    assert demo.prune_uploads(max_bytes=10_000) == 1  # only the one past 10 minutes
    assert not files["old"].exists() and files["mid"].exists()
    assert demo.prune_uploads(max_bytes=1000) == 1  # over the total: the oldest goes
    assert not files["mid"].exists() and files["new"].exists()
    assert demo.prune_uploads(max_bytes=1000) == 0


def test_a_killed_servers_uploads_are_removed_by_the_next_server(tmp_path):
    """SIGKILL runs no cleanup: the next demo removes the folders of servers that are gone,
    never a live server's (its own pid here) and never what is not a server's folder."""
    import subprocess
    import sys

    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    dead = tmp_path / f"server-{gone}-x1"
    (dead / "f").mkdir(parents=True)
    (dead / "f" / "image.webp").write_bytes(b"x")
    live = tmp_path / f"server-{os.getpid()}-x2"
    live.mkdir()
    other = tmp_path / "server-notes-x3"
    other.mkdir()
    demo.remove_orphans(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, other.name])


def test_input_problems_are_one_short_line_naming_no_server_path():
    message = (
        "Cannot move /srv/app/data/cache/demo-uploads/server-1-abc/0f3e/my song.wav to the "
        "cache: it was not uploaded\nTraceback (most recent call last):\n  ..."
    )
    line = demo.input_problem(message)
    assert line == "Cannot move my song.wav to the cache: it was not uploaded"
    assert len(demo.input_problem("Value: x is not in the choices: " + "a, " * 500)) == 200


def test_text_that_is_not_utf8_becomes_replacement_characters():
    assert valid_text("plain é") == "plain é"
    assert valid_text("abc\udcff\udcfe") == "abc\ufffd\ufffd"  # argv's undecodable bytes
    assert valid_text("a\ud800b").startswith("a") and "\ud800" not in valid_text("a\ud800b")
    valid_text("a\ud800b").encode("utf-8")  # encodable


def test_a_killed_saves_temporaries_go_unless_the_run_is_being_written(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    stale = run / "checkpoints" / ".last.pt.abc123.tmp"
    stale.write_bytes(b"half")
    fd = os.open(tmp_path / "run" / ".lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # another writer holds the folder
    try:
        assert tidy_interrupted(run) == 0 and stale.exists()  # its temporaries may be live
    finally:
        os.close(fd)
    assert tidy_interrupted(run) == 1 and not stale.exists()
    lock_run_dir(run)  # and the lock it took is released
    unlock_run_dir(run)
