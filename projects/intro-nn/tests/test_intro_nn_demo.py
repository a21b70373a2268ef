"""`intro-nn demo`: started as a user would, driven over HTTP (gradio_client) and in Chromium."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import expect

from intro_nn.cli import main
from intro_nn.config import DemoConfig
from intro_nn.demo import (
    HUMAN_FIELDS,
    DigitModel,
    find_models,
    from_human,
    loan_decision,
    loan_row,
    to_mnist,
)
from intro_nn.inference import read_digit_image
from intro_nn.loan import load_loan_model
from shared.errors import UserError
from testkit import (
    ServedDemo,
    browser_page,
    demo_client,
    offsite_requests,
    screenshot_dir,
)


def digit_png(path: Path) -> Path:
    """A drawn "1": a dark vertical stroke on a white 280x280 canvas."""
    canvas = np.full((280, 280, 3), 255, np.uint8)
    canvas[60:220, 130:150] = 0
    Image.fromarray(canvas).save(path)
    return path


def test_drawing_becomes_a_centred_mnist_digit():
    canvas = np.full((280, 280, 3), 255, np.uint8)
    canvas[20:100, 200:230] = 0  # a stroke in a corner
    digit = to_mnist(canvas)
    assert digit.shape == (28, 28) and digit.dtype == np.uint8
    rows, cols = np.nonzero(digit > 50)
    assert rows.max() - rows.min() + 1 <= 21 and 10 <= cols.mean() <= 18 and 10 <= rows.mean() <= 18
    rgba = np.zeros((100, 100, 4), np.uint8)  # transparent canvas, opaque black ink
    rgba[30:70, 45:55, 3] = 255
    assert to_mnist(rgba).max() > 200


def paper_photo(path: Path) -> Path:
    """A "7" on grey, unevenly lit, noisy paper: what a phone's photo posted to /digit is."""
    rng = np.random.default_rng(4)
    gray = 190 + np.linspace(0, 40, 240)[None, :] + rng.normal(0, 8, (300, 240))
    gray[60:80, 50:190] = 45  # the bar
    for i in range(160):  # the stem, slanted
        gray[80 + i, 170 - i // 3 : 186 - i // 3] = 45
    Image.fromarray(np.clip(gray, 0, 255).astype(np.uint8)).convert("RGB").save(path)
    return path


def test_a_photo_becomes_the_same_digit_in_the_demo_as_in_predict(tmp_path):
    """Through /digit a held-out photo of a 7 read "6" (0.29) where ``predict --image`` read "7"
    (0.98): the demo treated the grey paper as faint ink. Now both read it the same way."""
    png = paper_photo(tmp_path / "seven.png")
    demo = to_mnist(np.asarray(Image.open(png).convert("RGBA")))
    assert np.array_equal(demo, read_digit_image(png))
    assert (demo > 0).mean() < 0.35  # the paper is not ink: a stroke, not a filled square


def test_served_demo_answers_like_the_models(trained, tmp_path, monkeypatch):
    root, run, loan_run = trained
    monkeypatch.setenv("DL_RUNS_DIR", str(root / "runs"))  # the newest run is found there
    with ServedDemo("intro_nn.cli", [], cwd=tmp_path) as demo:
        client = demo_client(demo.url)
        import urllib.request

        with urllib.request.urlopen(demo.url + "config") as page:  # the page's components
            config = page.read().decode()
        assert "Trained on:** MNIST IDX files in" in config  # which digits the model learnt from
        png = digit_png(tmp_path / "one.png")
        from gradio_client import handle_file

        drawing = {"background": None, "layers": [], "composite": handle_file(str(png))}
        probs, seen = client.predict(drawing, api_name="/digit")
        assert Path(seen["path"] if isinstance(seen, dict) else seen).is_file()
        direct = DigitModel(run / "checkpoints" / "best.pt", __import__("torch").device("cpu"))
        expected = direct.probabilities(to_mnist(np.asarray(Image.open(png).convert("RGB"))))
        got = {c["label"]: c["confidence"] for c in probs["confidences"]}
        assert set(got) == set(expected)
        assert all(abs(got[k] - expected[k]) < 1e-4 for k in got)
        photo = paper_photo(tmp_path / "seven.png")  # a photo: the same as predict --image reads
        probs, _ = client.predict(
            {"background": None, "layers": [], "composite": handle_file(str(photo))},
            api_name="/digit",
        )
        expected = direct.probabilities(read_digit_image(photo))
        got = {c["label"]: c["confidence"] for c in probs["confidences"]}
        assert all(abs(got[k] - expected[k]) < 1e-4 for k in got), (got, expected)

        bundle = load_loan_model(loan_run)
        # the page asks in human units: 20% interest, $500 a month, FICO 650
        human = {"int.rate": 20.0, "installment": 500.0, "fico": 650}
        form = {f[0]: human.get(f[0], f[2]) for f in HUMAN_FIELDS}
        text, gauge, numbers = client.predict("small_business", *form.values(), api_name="/loan")
        expected = loan_decision(
            bundle, loan_row("small_business", from_human(list(form.values())))
        )
        assert numbers == expected
        p = expected["probability_not_fully_paid"]
        assert f"a {100 * p:.1f}% chance that this loan is not fully paid" in text
        assert gauge["label"] in ("not fully paid", "fully paid")
        column = from_human(list(form.values()))
        assert column["int.rate"] == 0.2 and abs(column["log.annual.inc"] - 10.93) < 0.01

        # bad inputs: a readable message, and the server keeps serving
        from gradio_client.exceptions import AppError

        with pytest.raises(AppError, match="between 300 and 850"):
            client.predict("small_business", *{**form, "fico": 2000}.values(), api_name="/loan")
        with pytest.raises(AppError, match="annual income"):
            client.predict(
                "small_business", *{**form, "log.annual.inc": -5}.values(), api_name="/loan"
            )
        blank = tmp_path / "blank.png"
        Image.fromarray(np.full((280, 280, 3), 255, np.uint8)).save(blank)
        with pytest.raises(AppError, match="canvas is empty"):
            client.predict(
                {"background": None, "layers": [], "composite": handle_file(str(blank))},
                api_name="/digit",
            )
        # a client can post any PNG as the drawing: a 13,000 x 13,000 one is refused from its
        # header (decoding it took 6.6 GB), and the server goes on
        bomb = tmp_path / "bomb.png"
        Image.new("1", (13_000, 13_000), 1).save(bomb)
        with pytest.raises(AppError, match="13000x13000 pixels"):
            client.predict(
                {"background": None, "layers": [], "composite": handle_file(str(bomb))},
                api_name="/digit",
            )
        assert client.predict("credit_card", *form.values(), api_name="/loan")[2]["threshold"] > 0
    # uploads landed in a folder of this server's own in the project's cache folder
    # (DL_DATA_DIR/cache/intro-nn/demo-uploads/server-*), removed when the server stopped
    uploads = tmp_path / "data" / "cache" / "intro-nn" / "demo-uploads"
    assert uploads.is_dir() and not list(uploads.iterdir())


def test_an_mnist_run_and_a_loan_run_are_served_together(trained, monkeypatch):
    root, run, loan_run = trained
    monkeypatch.setenv("DL_RUNS_DIR", str(root / "elsewhere"))  # no newest-run fallback
    mnist, loan = find_models(DemoConfig(run=run, loan_run=loan_run))
    assert mnist.run == run and loan.run == loan_run
    mnist, loan = find_models(DemoConfig(run=run))  # --run alone: that folder's models only
    assert mnist.run == run and loan is None
    with pytest.raises(UserError, match="holds no model"):
        find_models(DemoConfig(run=run, loan_run=run))


def test_no_model_is_one_message(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DL_RUNS_DIR", str(tmp_path / "empty"))
    assert main(["demo"]) == 2
    err = capsys.readouterr().err
    assert "intro-nn train" in err and "Traceback" not in err
    assert main(["demo", "--run", str(tmp_path / "nowhere")]) == 2
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:  # refused as it is parsed, for what it is
        main(["demo", "--port", "70000"])
    assert stop.value.code == 2
    assert "--port: '70000' is outside 0..65535" in capsys.readouterr().err


def test_browser_draws_a_digit_and_reads_the_guess(trained, tmp_path):
    root, run, loan_run = trained
    with (
        ServedDemo("intro_nn.cli", ["--run", run, "--loan-run", loan_run], cwd=tmp_path) as demo,
        browser_page(demo.url) as page,
    ):
        # no tool to pick: the page opens with the brush selected
        # (Gradio highlights the chosen tool; that the stroke below draws at all proves it)
        expect(page.get_by_label("Brush", exact=True).first).to_have_class(
            re.compile(r"\bhighlight\b")
        )
        canvas = page.locator("canvas").first
        box = canvas.bounding_box()
        page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.25)
        page.mouse.down()
        for i in range(1, 11):
            page.mouse.move(
                box["x"] + box["width"] * 0.5, box["y"] + box["height"] * (0.25 + 0.05 * i)
            )
        page.mouse.up()  # no button: the guess comes as the user draws
        probs = page.locator("#probs")
        probs.get_by_text("%").first.wait_for()  # the ten bars are drawn
        text = probs.inner_text()
        assert "Error" not in text and text.count("%") == 10, text
        page.screenshot(path=str(screenshot_dir(tmp_path) / "intro-nn-demo.png"))
        assert offsite_requests(page, demo.url) == []
        assert json.dumps(page.requests_seen)  # the page did load through the demo's server


@pytest.mark.parametrize("when", ["loading", "serving"])
def test_sigterm_twice_leaves_no_uploads_and_no_atexit_noise(when, trained, tmp_path):
    """A ``timeout``-style stop sends SIGTERM to the process group: under ``uv run`` the demo
    gets it twice (from the group and forwarded by uv). The upload folder survived a stop before
    the page was served, and the second signal interrupted an atexit callback ("Exception ignored
    in atexit callback ... Terminated"). Now: exit 143, the folder gone, no such line."""
    import signal
    import subprocess
    import sys
    import time

    root, run, _ = trained
    uploads = tmp_path / "data" / "cache" / "intro-nn" / "demo-uploads"
    proc = subprocess.Popen(
        [sys.executable, "-X", "faulthandler", "-m", "intro_nn.cli", "demo", "--run", str(run)]
        + ["--port", "0"],
        cwd=tmp_path,
        env={**__import__("os").environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    if when == "loading":  # the upload folder exists: gradio is imported, nothing is served yet
        while not (uploads.is_dir() and any(uploads.iterdir())) and proc.poll() is None:
            time.sleep(0.05)
    else:
        for line in proc.stdout:
            if line.startswith("serving on "):
                break
    proc.send_signal(signal.SIGTERM)
    proc.send_signal(signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:  # seen once: say where every thread stood
        proc.send_signal(signal.SIGABRT)  # faulthandler prints each thread's stack
        raise AssertionError(f"running 120 s after SIGTERM:\n{proc.communicate()[0]}") from None
    assert proc.returncode == 143, out
    assert "Exception ignored" not in out and "Traceback" not in out, out
    assert not list(uploads.iterdir()), list(uploads.iterdir())
