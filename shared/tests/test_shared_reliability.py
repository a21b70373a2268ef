"""Files and folders under faults: archive members that escape, modes, races, killed saves."""

import io
import multiprocessing
import os
import signal
import stat
import tarfile
import zipfile

import pytest

from shared.download import extract
from shared.errors import UserError
from shared.files import write_json, write_text
from shared.runs import Run, new_run_dir


def tar_with(tmp_path, name, member, *, link=None):
    path = tmp_path / name
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo(member)
        if link is not None:
            info.type, info.linkname = tarfile.SYMTYPE, link
            tar.addfile(info)
        else:
            data = b"pwned"
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.parametrize(
    "member,link",
    [("../escaped.txt", None), ("evil", "/etc/passwd"), ("inner/../../escaped.txt", None)],
)
def test_tar_members_cannot_escape(tmp_path, member, link):
    archive = tar_with(tmp_path, "a.tar.gz", member, link=link)
    with pytest.raises(UserError, match="could not extract"):
        extract(archive, tmp_path / "out" / "x", quiet=True)
    assert not (tmp_path / "out" / "escaped.txt").exists()
    assert not (tmp_path / "out" / "x").exists()  # nothing half-extracted is left either
    assert [p.name for p in (tmp_path / "out").iterdir()] == []


def test_absolute_tar_members_land_inside(tmp_path):
    target = tmp_path / "absolute-escape.txt"
    archive = tar_with(tmp_path, "a.tar.gz", str(target))
    out = extract(archive, tmp_path / "out" / "x", quiet=True)
    assert not target.exists()  # the data filter strips the leading "/"
    assert (out / str(target).lstrip("/")).read_bytes() == b"pwned"


def test_zip_members_cannot_escape(tmp_path):
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ok.txt", "fine")
        zf.writestr("../../escaped.txt", "pwned")
    with pytest.raises(UserError, match="outside"):
        extract(archive, tmp_path / "out" / "x", quiet=True)
    assert not (tmp_path / "escaped.txt").exists()


def test_written_files_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        write_json(tmp_path / "a.json", {"x": 1})
        write_text(tmp_path / "b.txt", "x")
        os.umask(0o077)
        write_text(tmp_path / "c.txt", "private")
    finally:
        os.umask(old)
    mode = lambda p: stat.S_IMODE((tmp_path / p).stat().st_mode)  # noqa: E731
    assert mode("a.json") == 0o644 and mode("b.txt") == 0o644 and mode("c.txt") == 0o600


def _make_run_dir(_):
    return str(new_run_dir("race"))


def test_runs_started_together_get_their_own_folders(tmp_path, monkeypatch):
    monkeypatch.setenv("DL_RUNS_DIR", str(tmp_path / "runs"))
    # Forked workers inherit this process's SIGTERM handler (shared.signals, installed by the CLI
    # tests), which may defer SIGTERM; `with Pool()` ends by SIGTERM (terminate), and on a busy
    # machine a worker could then wait on the task queue's lock forever. So the workers get
    # SIGTERM's default action back and the pool ends by close/join: each leaves at its sentinel.
    reset = (signal.SIGTERM, signal.SIG_DFL)
    pool = multiprocessing.get_context("fork").Pool(4, initializer=signal.signal, initargs=reset)
    try:
        folders = pool.map(_make_run_dir, range(8))
    finally:
        pool.close()
        pool.join()
    assert len(set(folders)) == 8  # the same second, eight distinct folders
    assert all(os.path.isdir(f) for f in folders)


def test_run_folder_defaults_to_the_runs_root(tmp_path, monkeypatch):
    monkeypatch.setenv("DL_RUNS_DIR", str(tmp_path / "elsewhere"))
    run = Run("proj")
    assert run.path.parent == tmp_path / "elsewhere" / "proj" and run.figures.is_dir()
    assert not run.checkpoints.exists()  # made by the first checkpoint: evaluate leaves none


def test_summary_never_holds_nan(tmp_path, capsys):
    import json

    Run("p", tmp_path / "r").finish({"val_loss": float("nan"), "ok": 1.0})
    assert json.loads(capsys.readouterr().out.splitlines()[-1]) == {"val_loss": None, "ok": 1.0}
    assert "NaN" not in (tmp_path / "r" / "summary.json").read_text()


SWALLOWING = """
import atexit, threading, time
import shared.cli as cli
atexit.register(lambda: print("cleaned up", flush=True))  # a demo's upload folder, say
cli.SHUTDOWN_GRACE_S = 0.5
cli.handle_sigterm()
try:
    print("ready", flush=True)  # (inside: the stop may come before the next line runs)
    while True:
        time.sleep(0.01)
except BaseException:  # a library that swallows every exception, the stop included
    print("swallowed", flush=True)
threading.Event().wait()  # and then nothing would ever end the process
"""


def test_a_swallowed_sigterm_still_ends_the_process():
    """SIGTERM raises ``Terminated`` in the main thread; code that catches it (a bare except in a
    library being imported) must not leave a process that ignores every later stop, and the
    cleanups registered for exit still run."""
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-c", SWALLOWING],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143 and "swallowed" in out, (out, err)
    assert "cleaned up" in out, out  # the exit's cleanups ran before the process ended
    assert "still running 0.5 s later" in err, err
