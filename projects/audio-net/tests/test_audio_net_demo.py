"""`audio-net demo`: started as a user would, driven over HTTP (gradio_client) and in Chromium."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from audio_net_data import SR, genre_clip, make_learnable_gtzan

from audio_net.cli import main
from audio_net.config import PredictConfig
from audio_net.predict import predict_files
from shared.testing import (
    ServedDemo,
    browser_page,
    demo_client,
    offsite_requests,
    screenshot_dir,
)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    data = make_learnable_gtzan(root / "gtzan", per_genre=3, seconds=4.0)
    run = root / "runs" / "audio-net" / "20260101-000000"
    argv = ["train", "--data-dir", data, "--no-pretrained", "--epochs", "2", "--device", "cpu"]
    argv += ["--batch-size", "16", "--cache-dir", root / "cache", "--out", run, "--quiet"]
    assert main([str(a) for a in argv]) == 0
    return root, run


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
        assert demo.seconds < 60, demo.output()
        client = demo_client(demo.url)
        genres, spec, timeline = client.predict(handle_file(str(clip)), api_name="/classify")
        got = {c["label"]: c["confidence"] for c in genres["confidences"]}
        assert genres["label"] == expected[0]["genre"]
        for entry in expected:
            assert abs(got[entry["genre"]] - entry["probability"]) < 1e-3
        assert spec is not None and timeline is not None

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
    assert list((tmp_path / "data" / "cache" / "audio-net" / "demo-uploads").rglob("*.flac"))


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
        genres.get_by_text("%").first.wait_for(timeout=60_000)
        page.locator("img, canvas, svg").last.wait_for(timeout=30_000)
        page.wait_for_timeout(1000)
        text = genres.inner_text()
        assert "Error" not in text and text.count("%") == 3, text
        page.screenshot(path=str(screenshot_dir(tmp_path) / "audio-net-demo.png"), full_page=True)
        assert offsite_requests(page, demo.url) == []
