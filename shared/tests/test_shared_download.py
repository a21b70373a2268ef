import functools
import hashlib
import http.server
import shutil
import threading

import pytest

from shared.download import DownloadError, extract, fetch, why_failed
from shared.files import data_root
from testkit.served import free_port

PAYLOAD = b"col1,col2\n1,2\n" * 1000
SHA = hashlib.sha256(PAYLOAD).hexdigest()


@pytest.fixture()
def server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    (root / "data.csv").write_bytes(PAYLOAD)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", root
    httpd.shutdown()


def test_download_and_verify(server, tmp_path):
    url, _ = server
    dest = tmp_path / "data" / "loan.csv"
    assert fetch(f"{url}/data.csv", dest, SHA, quiet=True) == dest
    assert dest.read_bytes() == PAYLOAD
    # a second call reuses the verified file without the network
    assert fetch("http://127.0.0.1:9/unreachable", dest, SHA, quiet=True) == dest


def test_mirror_fallback(server, tmp_path):
    url, _ = server
    dest = tmp_path / "d.csv"
    fetch([f"{url}/missing.csv", f"{url}/data.csv"], dest, SHA, quiet=True)
    assert dest.read_bytes() == PAYLOAD


def test_checksum_mismatch_is_refused_and_leaves_nothing(server, tmp_path):
    url, _ = server
    dest = tmp_path / "data" / "loan.csv"
    with pytest.raises(DownloadError, match="checksum mismatch") as exc:
        fetch(f"{url}/data.csv", dest, "0" * 64, quiet=True)
    assert str(dest) in str(exc.value)
    assert not dest.parent.exists()  # not even the folder the download made


def test_offline_message_names_url_path_and_manual_step(tmp_path):
    url = f"http://127.0.0.1:{free_port()}/loan.csv"  # a port nobody listens on
    dest = tmp_path / "loan.csv"
    with pytest.raises(DownloadError) as exc:
        fetch(url, dest, SHA, quiet=True, timeout=5)
    msg = str(exc.value)
    assert url in msg and str(dest) in msg and "by hand" in msg and SHA in msg
    assert not dest.exists() and list(tmp_path.iterdir()) == []


def test_existing_file_with_wrong_hash_is_refused(tmp_path):
    dest = tmp_path / "x.csv"
    dest.write_bytes(b"other")
    with pytest.raises(DownloadError, match="delete it"):
        fetch("http://127.0.0.1:9/x", dest, SHA, quiet=True)


def test_extract_archive(tmp_path):
    src = tmp_path / "src"
    (src / "inner").mkdir(parents=True)
    (src / "inner" / "a.txt").write_text("hello")
    archive = shutil.make_archive(str(tmp_path / "arch"), "gztar", src)
    out = extract(archive, tmp_path / "out", quiet=True)
    assert (out / "inner" / "a.txt").read_text() == "hello"
    assert extract(archive, tmp_path / "out", quiet=True) == out  # second call is a no-op


def test_data_root_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("DL_DATA_DIR", str(tmp_path / "env"))
    assert data_root(tmp_path / "flag") == tmp_path / "flag"
    assert data_root() == tmp_path / "env"
    monkeypatch.delenv("DL_DATA_DIR")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "uv.lock").write_text("")
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    assert data_root() == tmp_path / "data"


def test_failed_download_leaves_no_folder_and_says_what_else_works(tmp_path):
    dest = tmp_path / "data" / "loan" / "loan.csv"
    with pytest.raises(DownloadError, match=r"or pass --data FILE$"):
        fetch("http://127.0.0.1:9/unreachable", dest, SHA, quiet=True, hint="pass --data FILE")
    assert list(tmp_path.iterdir()) == []  # neither data/ nor data/loan/ was left behind
    (tmp_path / "kept").mkdir()
    with pytest.raises(DownloadError):
        fetch("http://127.0.0.1:9/unreachable", tmp_path / "kept" / "x.csv", quiet=True)
    assert (tmp_path / "kept").is_dir()  # a folder that existed before stays


def test_a_failed_download_says_why_in_plain_words(server, tmp_path):
    """One short reason per URL, never a cut-off repr of urllib3's exception."""
    url, _ = server
    with pytest.raises(DownloadError) as exc:
        fetch([f"{url}/missing.csv", "http://127.0.0.1:9/x.csv"], tmp_path / "x.csv", quiet=True)
    lines = str(exc.value).splitlines()
    assert lines[1].endswith("/missing.csv: HTTP 404 File not found"), lines
    assert lines[2].endswith("/x.csv: no network (connection refused)"), lines
    assert "HTTPConnectionPool" not in str(exc.value)
    try:
        try:
            raise OSError("[Errno -3] Temporary failure in name resolution")
        except OSError as inner:
            raise ConnectionError(
                "HTTPSConnectionPool(host='raw.githubusercontent.com', port=443): Max retries "
                'exceeded (Caused by NameResolutionError("HTTPSConnection"))'
            ) from inner
    except ConnectionError as err:
        assert why_failed(err) == "no network (raw.githubusercontent.com could not be resolved)"
