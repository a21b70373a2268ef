"""`austen-net demo`: started as a user would, driven over HTTP (gradio_client) and in Chromium."""

import re

import pytest
import torch
from austen_net_data import austen_like, write_corpus
from playwright.sync_api import expect

from austen_net.cli import main
from austen_net.demo import Writer
from shared.errors import UserError
from shared.files import cache_root
from testkit import (
    ServedDemo,
    browser_page,
    demo_client,
    offsite_requests,
    raw_call,
    screenshot_dir,
)

TRAIN = ["train", "--preset", "tiny", "--batch-size", "8", "--device", "cpu", "--quiet"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    corpus = write_corpus(root / "corpus")
    runs = {}
    for kind, vocab in (("bpe", "512"), ("char", "0")):
        run = root / "runs" / "austen-net" / f"2026010{len(runs) + 1}-000000-{kind}"
        extra = ["--vocab-size", vocab] if kind == "bpe" else []
        argv = [*TRAIN, "--tokenizer", kind, *extra, "--corpus-dir", str(corpus)]
        argv += ["--max-steps", "20", "--eval-every", "10", "--out", str(run)]
        assert main(argv) == 0
        runs[kind] = run
    return root, runs


def test_stream_matches_generate_and_unknown_characters_are_named(trained):
    root, runs = trained
    writer = Writer(runs["char"] / "checkpoints" / "best.pt", torch.device("cpu"))
    assert writer.tok.unknown_characters("Emma \u6f22") == ["\u6f22"]
    with pytest.raises(UserError, match="never seen in training"):
        next(writer.stream("\u6f22\u5b57", 5, 0.8, 0, None))
    texts = [t for t, _ in writer.stream("Emma", 12, 0.0, 0, None)]
    assert len(texts) == 12 and all(b.startswith(a) for a, b in zip(texts, texts[1:], strict=False))
    # the page's values under generate's own flag rules, and the page's --max-tokens
    with pytest.raises(UserError, match=r"temperature is outside 0\.\.100 \(101\.0\)"):
        next(writer.stream("Emma", 5, 101.0, 0, None))
    with pytest.raises(UserError, match="length is outside 1"):
        next(writer.stream("Emma", 0, 0.8, 0, None))
    writer.max_tokens = 10
    with pytest.raises(UserError, match="length 11 is above --max-tokens 10"):
        next(writer.stream("Emma", 11, 0.8, 0, None))
    score = writer.score(austen_like(20, 1))
    assert 0 < score["bpc"] < 8 and score["chars"] > 100


@pytest.fixture
def demo_threads():
    """This process at the demo's thread count (ServedDemo starts it with OMP_NUM_THREADS=1): a
    ``--weights auto`` choice is cached per machine and thread count, so the two share one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_served_demo_streams_and_scores(trained, tmp_path, monkeypatch, demo_threads):
    root, runs = trained
    monkeypatch.setenv("DL_RUNS_DIR", str(root / "runs"))
    with ServedDemo("austen_net.cli", ["--run", runs["bpe"]], cwd=tmp_path) as demo:
        # the weights the demo chose (--weights auto, measured once and cached for this machine):
        # read from its cache entry, not measured again (on busy cores a second measurement may
        # choose other weights, and score the same text 0.0002 bits/char apart)
        writer = Writer(runs["bpe"] / "checkpoints" / "best.pt", torch.device("cpu"), "auto")
        assert len(list((cache_root("austen-net") / "weights").glob("*.json"))) == 1
        client = demo_client(demo.url)
        job = client.submit("Emma was", 30, 0.0, 0, 1.0, 7, api_name="/write")
        updates = list(job)  # one update per token: the text streams in
        text, speed = job.result()
        expected = [t for t, _ in writer.stream("Emma was", 30, 0.0, 0, None, seed=7)][-1]
        assert text == expected and speed.endswith("tokens/s")
        import io

        from austen_net.config import GenerateConfig
        from austen_net.generate import generate_command

        printed = io.StringIO()  # what `austen-net generate` prints for the same request
        ckpt = runs["bpe"] / "checkpoints" / "best.pt"
        generate_command(
            GenerateConfig(
                checkpoint=ckpt,
                prompt="Emma was",
                max_new_tokens=30,
                temperature=0.0,
                top_k=0,
                seed=7,
                device="cpu",
            ),
            out=printed,
        )
        assert printed.getvalue() == text + "\n"
        assert len(updates) >= 10, len(updates)
        passage = austen_like(10, 5)
        sentence, bpc = client.predict(passage, api_name="/score")
        expected_score = writer.score(passage)
        assert bpc == expected_score["bpc"]
        assert sentence.startswith(f"**{expected_score['bpc']:.3f} bits per character** over")

        from gradio_client.exceptions import AppError

        with pytest.raises(AppError, match="at least a few words"):
            client.predict("", api_name="/score")
        with pytest.raises(AppError, match="the limit is"):
            client.predict("x" * 2500, 5, 0.8, 0, 1.0, 1, api_name="/write")
        # the page's sliders do not bind an API client: the server checks as the CLI does
        nan = raw_call(demo.url, "write", '["Emma", 3, NaN, 0, 1.0, 1]')  # JSON's NaN, by hand
        assert "event: error" in nan and "temperature is not a finite number" in nan, nan
        with pytest.raises(AppError, match="seed is too large an integer"):
            client.predict("Emma", 3, 0.8, 0, 1.0, 2**70, api_name="/write")
        assert client.predict("Emma", 3, 0.8, 0, 1.0, 1, api_name="/write")[0].startswith("Emma")
        with pytest.raises(AppError, match="greater than maximum"):  # Gradio's own slider check
            client.predict("Emma", 10**6, 0.8, 0, 1.0, 1, api_name="/write")
        nan_seed = raw_call(demo.url, "write", '["Emma", 3, 0.8, 0, 1.0, NaN]')  # Gradio's int()
        assert "event: error" in nan_seed, nan_seed
        words = raw_call(demo.url, "write", '["Emma", "three", 0.8, 0, 1.0, "seven"]')
        assert "event: error" in words, words  # strings where numbers belong: refused, no cast
        odd = raw_call(demo.url, "write", '["Em\\ud800ma", 3, 0.8, 0, 1.0, 1]')  # lone surrogate
        assert "event: complete" in odd and ("\\ufffd" in odd or "\ufffd" in odd), odd
        log = demo.output()
    # seven refusals, one warning line each, and no traceback (Gradio's own checks included);
    # SIGTERM stops the server with status 143, as it stops every command
    assert "Traceback" not in log and log.count("warning: refused input:") == 7, log
    assert demo.proc.returncode == 143 and "Keyboard interruption" not in demo.output()


def test_no_model_is_one_message(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DL_RUNS_DIR", str(tmp_path / "empty"))
    assert main(["demo"]) == 2
    err = capsys.readouterr().err
    assert "austen-net train" in err and "Traceback" not in err


def test_browser_writes_and_shows_the_speed(trained, tmp_path):
    root, runs = trained
    with (
        ServedDemo("austen_net.cli", ["--run", runs["bpe"]], cwd=tmp_path) as demo,
        browser_page(demo.url) as page,
    ):
        page.get_by_label("prompt").fill("Mr. Darcy")
        page.get_by_role("button", name="Write", exact=True).click()
        speed = page.locator("#speed textarea, #speed input").first
        # wait for the end of the generation (the last update says "done"), never on timing: the
        # first updates can hold the prompt alone (a BPE token may end inside a character)
        expect(speed).to_have_value(re.compile(r"^done: \d+ tokens, .* tokens/s$"))
        story = page.locator("#story textarea").first.input_value()
        assert story.startswith("Mr. Darcy") and len(story) > len("Mr. Darcy")
        page.screenshot(path=str(screenshot_dir(tmp_path) / "austen-net-demo.png"))
        assert offsite_requests(page, demo.url) == []


@pytest.mark.parametrize("source", ["gpt2_folder", "llama_folder"])
def test_an_imported_model_writes_and_scores_in_the_demo(source, request, tmp_path, capsys):
    """Every /write and /score failed for an imported model ('HFTokenizer' object has no
    attribute 'sp'): the demo served over HTTP with a GPT-2 (byte-level) and a Llama (byte
    fallback) imported checkpoint, each tokenizer kind answering ``unknown_characters``."""
    folder = request.getfixturevalue(source)
    ckpt = tmp_path / "imported.pt"
    assert main(["import", str(folder), "--out", str(ckpt), "--quiet"]) == 0
    capsys.readouterr()
    writer = Writer(ckpt, torch.device("cpu"))
    assert writer.tok.kind == "hf" and writer.tok.unknown_characters("Emma \u6f22 😀") == []
    passage = austen_like(5, 2)
    with ServedDemo("austen_net.cli", ["--checkpoint", ckpt], cwd=tmp_path) as demo:
        client = demo_client(demo.url)
        text, speed = client.predict("Emma was", 8, 0.0, 0, 1.0, 7, api_name="/write")
        expected = [t for t, _ in writer.stream("Emma was", 8, 0.0, 0, None, seed=7)][-1]
        assert text == expected and speed.endswith("tokens/s")
        _, bpc = client.predict(passage, api_name="/score")
        assert bpc == writer.score(passage)["bpc"]
        assert "Traceback" not in demo.output()
