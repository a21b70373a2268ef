"""`audio-net serve`: audio files and raw samples over HTTP, answered as `predict` answers them;
concurrent requests batched; bad audio refused with a JSON body while the server goes on."""

import json
import threading

import httpx
import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF
from audio_net_data import SR, genre_clip

from audio_net.cli import main
from audio_net.config import PredictConfig
from audio_net.predict import predict_files
from testkit import ServedDemo


def stereo_song(path, genre: int, seconds: float, rate: int = 44100):
    wave = genre_clip(genre, seconds, np.random.default_rng(genre))
    wave = AF.resample(torch.from_numpy(wave).float(), SR, rate).numpy()
    sf.write(path, np.stack([wave, wave], 1), rate)
    return path


def test_uploads_and_samples_answered_as_predict_answers(trained, tmp_path):
    root, run = trained
    songs = [stereo_song(tmp_path / f"song{g}.wav", g, 6.0) for g in range(8)]
    local = predict_files(
        PredictConfig(files=songs, checkpoint=run / "checkpoints" / "best.pt", device="cpu")
    )
    args = ["--run", run, "--device", "cpu", "--max-wait-ms", "200", "--max-seconds", "30"]
    with ServedDemo("audio_net.cli", args, cwd=tmp_path, command="serve") as s:
        url = s.url + "v1/predict"
        answers: dict = {}

        def ask(i: int) -> None:
            body = songs[i].read_bytes()
            answers[i] = httpx.post(url, content=body, headers={"content-type": "audio/wav"})

        threads = [threading.Thread(target=ask, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for i, expected in enumerate(local):
            got = answers[i].json()
            assert answers[i].status_code == 200, got
            assert [t["label"] for t in got["top"]] == [t["label"] for t in expected["top"]]
            for a, b in zip(got["top"], expected["top"], strict=True):
                assert abs(a["probability"] - b["probability"]) < 2e-3
            assert got["windows"] == expected["windows"]
        metrics = httpx.get(s.url + "metrics").text
        assert float(metrics.split("\naudio_net_batches ")[1].split()[0]) < 8, metrics

        mono = genre_clip(3, 5.0, np.random.default_rng(3)).tolist()
        r = httpx.post(url, json={"samples": mono, "sample_rate": SR})
        assert r.status_code == 200 and r.json()["seconds"] == 5.0, r.text
        assert abs(sum(r.json()["probabilities"].values()) - 1) < 1e-3

        long = stereo_song(tmp_path / "long.wav", 1, 40.0, 22050).read_bytes()
        bad = [
            (b"not audio at all", "audio/wav"),
            (long, "audio/wav"),
            (b"", "audio/wav"),
            (b'{"samples": [0.1, 0.2], "sample_rate": 22050}', "application/json"),
            (b'{"samples": [0.1], "sample_rate": 10}', "application/json"),
            (b'{"samples": "loud"}', "application/json"),
        ]
        for body, kind in bad:
            r = httpx.post(url, content=body, headers={"content-type": kind})
            assert r.status_code == 400 and r.json()["error"]["message"], r.text
        assert "30 s" in httpx.post(url, content=long).json()["error"]["message"]
        r = httpx.post(url, content=songs[0].read_bytes(), headers={"content-type": "audio/wav"})
        assert r.status_code == 200


def test_bench_serve_measures_its_own_server(trained, tmp_path, capsys):
    root, run = trained
    argv = ["bench", "--serve", "--checkpoint", run / "checkpoints" / "best.pt", "--device", "cpu"]
    assert main([str(a) for a in [*argv, "--serve-requests", "4", "--out", tmp_path / "b"]]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for c in (1, 4, 16):
        assert out[f"serve_errors_c{c}"] == 0 and out[f"serve_requests_per_s_c{c}"] > 0
