"""`intro-nn serve`: digits (pixels or a photo) and loan rows over HTTP, answered as `predict` and
the demo answer them; concurrent digits batched; bad requests refused with a JSON body."""

import base64
import io
import json
import threading

import httpx
import numpy as np
import torch
from intro_nn_data import make_digits
from PIL import Image

from intro_nn.cli import main
from intro_nn.demo import HUMAN_FIELDS, from_human, loan_decision, loan_row
from intro_nn.inference import DigitModel, predict_images
from intro_nn.loan import load_loan_model
from testkit import ServedDemo


def seven_png(path):
    """A dark "7" on light, unevenly lit paper, as a phone photographs it."""
    gray = 200 + np.linspace(0, 30, 240)[None, :] + np.zeros((300, 240))
    gray[60:80, 50:190] = 40
    for i in range(160):
        gray[80 + i, 180 - i // 2 - 8 : 180 - i // 2 + 8] = 40
    Image.fromarray(gray.clip(0, 255).astype(np.uint8)).save(path)
    return path


def test_digits_and_loans_answered_as_predict_and_the_demo_answer(trained, tmp_path):
    root, run, loan_run = trained
    images, _ = make_digits()
    model = DigitModel(run / "checkpoints" / "best.pt", torch.device("cpu"))
    photo = seven_png(tmp_path / "seven.png")
    args = ["--run", run, "--loan-run", loan_run, "--device", "cpu", "--max-wait-ms", "200"]
    with ServedDemo("intro_nn.cli", args, cwd=tmp_path, command="serve") as s:
        url = s.url + "v1/predict"
        r = httpx.post(url, json={"pixels": images[0].tolist()})
        assert r.status_code == 200, r.text
        expected = model.probabilities(images[0])
        assert r.json()["digit"] == int(max(expected, key=expected.get))
        assert np.allclose(list(r.json()["probabilities"].values()), list(expected.values()))

        sent = base64.b64encode(photo.read_bytes()).decode()
        r = httpx.post(url, json={"image": sent})
        local = predict_images(run / "checkpoints" / "best.pt", [photo], torch.device("cpu"))[0]
        assert r.json()["digit"] == local["digit"]
        assert [d["digit"] for d in r.json()["top3"]] == [d["digit"] for d in local["top3"]]

        form = [f[2] for f in HUMAN_FIELDS]
        row = {"purpose": "small_business", **from_human(form)}
        r = httpx.post(url, json={"loan": row})
        bundle = load_loan_model(loan_run)
        assert r.json() == loan_decision(bundle, loan_row("small_business", from_human(form)))

        answers = []

        def ask(i: int) -> None:
            answers.append(httpx.post(url, json={"pixels": images[i].tolist()}, timeout=300))

        threads = [threading.Thread(target=ask, args=(i,)) for i in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert [a.status_code for a in answers] == [200] * 16
        metrics = httpx.get(s.url + "metrics").text
        batches = float(metrics.split("\nintro_nn_digit_batches ")[1].split()[0])
        assert batches < 17, metrics  # 17 digits in all: some were answered together

        bad = [
            ({"pixels": [[0] * 27] * 28}, 400),
            ({"pixels": images[0].tolist(), "image": sent}, 400),
            ({"image": "not base64!"}, 400),
            ({"image": base64.b64encode(b"not an image").decode()}, 400),
            ({"loan": {"purpose": "yachts"}}, 400),
            ({"pixels": "seven"}, 400),
        ]
        for body, code in bad:
            r = httpx.post(url, json=body)
            assert r.status_code == code and r.json()["error"]["message"], (body, r.text)
        big = io.BytesIO(b"{" + b" " * (11 << 20) + b"}")
        r = httpx.post(url, content=big.getvalue(), headers={"content-type": "application/json"})
        assert r.status_code == 413
        assert httpx.post(url, json={"pixels": images[1].tolist()}).status_code == 200


def test_bench_serve_measures_its_own_server(trained, tmp_path, capsys):
    root, run, _ = trained
    argv = ["bench", "--serve", "--checkpoint", run / "checkpoints" / "best.pt", "--device", "cpu"]
    assert main([str(a) for a in [*argv, "--serve-requests", "8", "--out", tmp_path / "b"]]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for c in (1, 4, 16):
        assert out[f"serve_errors_c{c}"] == 0 and out[f"serve_requests_per_s_c{c}"] > 0
        assert out[f"serve_p50_ms_c{c}"] <= out[f"serve_p99_ms_c{c}"]
