"""`audio-net demo`: started as a user would, driven over HTTP (gradio_client) and in Chromium."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from audio_net_data import SR, genre_clip
from playwright.sync_api import expect

from audio_net.cli import main
from audio_net.config import PredictConfig
from audio_net.predict import predict_files
from testkit import (
    ServedDemo,
    browser_page,
    demo_client,
    offsite_requests,
    screenshot_dir,
    wait_for_images,
)


def song(path: Path, genre: int, seconds: float, rate: int, channels: int) -> Path:
    """A clip at another rate, stereo: the demo must mix and resample it as predict does."""
    import torch
    import torchaudio.functional as AF

    wave = genre_clip(genre, seconds, np.random.default_rng(genre))
    wave = AF.resample(torch.from_numpy(wave).float(), SR, rate).numpy()
    sf.write(path, np.stack([wave] * channels, 1) if channels > 1 else wave, rate)
    return path


def test_served_demo_matches_predict_and_survives_bad_files(trained, tmp_path, monkeypatch):
    root, run = trained
    monkeypatch.setenv("DL_RUNS_DIR", str(root / "runs"))  # the newest run is found there
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    clip = song(tmp_path / "stereo.flac", 3, 7.0, 44100, 2)
    expected = predict_files(
        PredictConfig(files=[clip], checkpoint=run / "checkpoints" / "best.pt", device="cpu")
    )[0]["top"]
    with ServedDemo("audio_net.cli", ["--max-seconds", "120"], cwd=tmp_path) as demo:
        client = demo_client(demo.url)
        genres, spec, timeline = client.predict(handle_file(str(clip)), api_name="/classify")
        got = {c["label"]: c["confidence"] for c in genres["confidences"]}
        assert genres["label"] == expected[0]["genre"]
        for entry in expected:
            assert abs(got[entry["genre"]] - entry["probability"]) < 1e-3
        for figure in (spec, timeline):  # both figures drawn: matplotlib, sent as an image
            assert figure["type"] == "matplotlib" and figure["plot"].startswith("data:image/")

        text = tmp_path / "notes.wav"
        text.write_text("this is not audio\n" * 50)
        long = tmp_path / "long.wav"
        sf.write(long, np.zeros(8000 * 600, np.int16), 8000)  # ten minutes of silence
        empty = tmp_path / "empty.wav"
        empty.write_bytes(b"")
        for bad, message in [
            (text, "cannot decode"),
            (long, "10.0 min"),
            (empty, "cannot decode"),
        ]:
            with pytest.raises(AppError, match=message):
                client.predict(handle_file(str(bad)), api_name="/classify")
        with pytest.raises(AppError, match="no audio"):
            client.predict(None, api_name="/classify")
        again, _, _ = client.predict(handle_file(str(clip)), api_name="/classify")
        assert again["label"] == genres["label"]  # still serving
        # clients sending one file share its stored upload: every one of them is answered
        from concurrent.futures import ThreadPoolExecutor

        def ask(_):
            return demo_client(demo.url).predict(handle_file(str(clip)), api_name="/classify")[0]

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(ask, range(8)))
        assert [a["label"] for a in answers] == [genres["label"]] * 8
        uploads = tmp_path / "data" / "cache" / "audio-net" / "demo-uploads"
        assert list(uploads.glob("server-*"))  # this server's own folder, pruned as it fills
        log = demo.output()
    assert not list(uploads.iterdir())  # the server's upload folder went with it
    # each refusal is one warning line in the server's terminal, never a traceback; SIGTERM
    # stops the server with status 143, as it stops every command
    assert "Traceback" not in log and log.count("warning: refused input:") == 4, log
    assert demo.proc.returncode == 143


def test_uploads_are_bounded_and_messages_name_the_users_file(trained, tmp_path):
    root, run = trained
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    from audio_net.demo import max_upload_bytes

    big = tmp_path / "big.wav"  # 3 MB: over what 2 s of 48 kHz stereo float needs
    sf.write(big, np.zeros((400_000, 2), np.float32), 48000, subtype="FLOAT")
    assert big.stat().st_size > max_upload_bytes(2.0)
    renamed = tmp_path / "my song.wav"
    renamed.write_text("a text file renamed .wav\n" * 40)
    with ServedDemo("audio_net.cli", ["--run", run, "--max-seconds", "2"], cwd=tmp_path) as demo:
        client = demo_client(demo.url)
        with pytest.raises(Exception, match="413|too large|exceeds|size"):
            client.predict(handle_file(str(big)), api_name="/classify")
        with pytest.raises(AppError) as exc:
            client.predict(handle_file(str(renamed)), api_name="/classify")
        message = str(exc.value)
        assert "my song.wav: cannot decode" in message and "demo-uploads" not in message, message
        uploads = tmp_path / "data" / "cache" / "audio-net" / "demo-uploads"
        assert not [p for p in uploads.rglob("*") if p.is_file() and p.stat().st_size > 10**6]
        assert not list(uploads.rglob("my song.wav"))  # refused: deleted at once


def test_no_model_is_one_message(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DL_RUNS_DIR", str(tmp_path / "empty"))
    assert main(["demo"]) == 2
    err = capsys.readouterr().err
    assert "audio-net train" in err and "Traceback" not in err


def test_browser_uploads_a_song_and_reads_the_genre(trained, tmp_path):
    root, run = trained
    clip = song(tmp_path / "song.wav", 5, 6.0, 16000, 1)
    with (
        ServedDemo("audio_net.cli", ["--run", run], cwd=tmp_path) as demo,
        browser_page(demo.url) as page,
    ):
        page.locator("input[type=file]").first.set_input_files(str(clip))
        page.get_by_role("button", name="Classify", exact=True).click()
        genres = page.locator("#genres")
        genres.get_by_text("%").first.wait_for()
        page.locator("img, canvas, svg").last.wait_for()
        wait_for_images(page)
        text = genres.inner_text()
        assert "Error" not in text and text.count("%") == 3, text
        page.screenshot(path=str(screenshot_dir(tmp_path) / "audio-net-demo.png"), full_page=True)
        assert offsite_requests(page, demo.url) == []


def test_browser_shows_one_error_for_a_bad_file(trained, tmp_path):
    """A text file renamed .wav: the message once, one error badge (on the answer), not three."""
    root, run = trained
    bad = tmp_path / "notes.wav"
    bad.write_text("this is not audio")
    with (
        ServedDemo("audio_net.cli", ["--run", run], cwd=tmp_path) as demo,
        browser_page(demo.url) as page,
    ):
        page.locator("input[type=file]").first.set_input_files(str(bad))
        page.get_by_role("button", name="Classify", exact=True).click()
        page.get_by_text("notes.wav", exact=False).last.wait_for()
        badges = page.locator(".error:not([class*=toast])").filter(has_text="Error")
        expect(badges.first).to_be_visible()
        where = [
            badges.nth(i).evaluate("e => (e.closest('[id]') || {}).id")
            for i in range(badges.count())
        ]
        assert badges.count() == 1 and where[0] == "genres", where  # not on the two figures
        toast = page.locator(".toast-body")
        assert toast.count() == 1 and "notes.wav: cannot decode" in toast.inner_text()
        assert "/" not in toast.inner_text()  # the user's file name, never a server path
