"""`austen-net serve`: OpenAI's completions API, started as a user starts it and called by the
unmodified `openai` client; concurrency past the queue, bad requests, SIGTERM mid-stream."""

import contextlib
import json
import signal
import threading

import httpx
import openai
import pytest
from austen_net_data import write_corpus

from austen_net.cli import main
from testkit import ServedDemo

TRAIN = ["train", "--preset", "tiny", "--batch-size", "8", "--device", "cpu", "--quiet"]
SERVE = ["--device", "cpu", "--weights", "fp32"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    corpus = write_corpus(root / "corpus")
    run = root / "run"
    argv = [*TRAIN, "--vocab-size", "512", "--corpus-dir", str(corpus), "--max-steps", "20"]
    assert main([*argv, "--eval-every", "10", "--out", str(run)]) == 0
    return run


def generated(run, capsys, prompt: str, tokens: int, seed: int) -> str:
    """What `austen-net generate` writes for the prompt (sampled at temperature 1, all tokens)."""
    capsys.readouterr()
    argv = ["generate", "--checkpoint", run / "checkpoints" / "best.pt", "--prompt", prompt]
    argv += ["--max-new-tokens", tokens, "--temperature", "1", "--top-k", "0", "--seed", seed]
    assert main([str(a) for a in [*argv, *SERVE, "--compile", "off"]]) == 0
    return capsys.readouterr().out[:-1]  # its closing newline


def test_the_openai_client_gets_generates_text_plain_and_streamed(run, tmp_path, capsys):
    # 150 tokens through a 64-token context: the window slides twice, as generate's does
    expected = generated(run, capsys, "Emma was", 150, 3)
    with ServedDemo("austen_net.cli", ["--run", run, *SERVE], cwd=tmp_path, command="serve") as s:
        client = openai.OpenAI(base_url=s.url + "v1", api_key="unused", max_retries=0)
        assert [m.id for m in client.models.list()] == ["austen-net"]
        ask = dict(model="austen-net", prompt="Emma was", max_tokens=150, temperature=1.0, seed=3)
        plain = client.completions.create(**ask)
        assert "Emma was" + plain.choices[0].text == expected
        assert plain.choices[0].finish_reason == "length" and plain.usage.completion_tokens == 150
        chunks = list(client.completions.create(**ask, stream=True))
        assert "".join(c.choices[0].text for c in chunks) == plain.choices[0].text
        assert chunks[-1].choices[0].finish_reason == "length" and len(chunks) > 20

        # n samples, each its own draw; a stop string ends a completion before it
        three = client.completions.create(**{**ask, "max_tokens": 30, "n": 3})
        assert sorted(c.index for c in three.choices) == [0, 1, 2]
        assert len({c.text for c in three.choices}) == 3
        stop = plain.choices[0].text[40:43]
        cut = client.completions.create(**ask, stop=[stop])
        assert cut.choices[0].finish_reason == "stop"
        assert cut.choices[0].text == plain.choices[0].text[: plain.choices[0].text.find(stop)]

        metrics = httpx.get(s.url + "metrics").text
        assert 'austen_net_requests_total{route="/v1/completions",status="200"} 4' in metrics
        assert (
            "austen_net_request_seconds_bucket" in metrics and "austen_net_queue_depth 0" in metrics
        )
        assert httpx.get(s.url + "health").json()["status"] == "ok"


def test_sixteen_at_once_past_the_queue_are_answered_or_refused_never_lost(run, tmp_path):
    """16 concurrent completions against 2 rows and a queue of 4: each is answered 200 or 503
    with Retry-After, within its deadline; then bad requests are 4xx JSON and it still serves."""
    args = ["--run", run, *SERVE, "--max-batch", "2", "--max-queue", "4", "--max-tokens", "100000"]
    with ServedDemo("austen_net.cli", args, cwd=tmp_path, command="serve") as s:
        url = s.url + "v1/completions"
        # two rows decoding and four waiting: the seventh is refused at once
        with contextlib.ExitStack() as held:
            endless = {"prompt": "Emma", "max_tokens": 100000, "stream": True}
            for _ in range(6):
                r = held.enter_context(httpx.stream("POST", url, json=endless, timeout=300))
                assert r.status_code == 200
            full = httpx.post(url, json={"prompt": "Anne", "max_tokens": 5})
            assert full.status_code == 503 and full.headers["retry-after"] == "1"
            assert "busy" in full.json()["error"]["message"]

        answers: list = []

        def ask(i: int) -> None:
            body = {"prompt": "Anne", "max_tokens": 40, "seed": i}
            try:
                r = httpx.post(url, json=body, timeout=300)
                answers.append((r.status_code, r.headers.get("retry-after"), r.json()))
            except httpx.HTTPError as exc:  # a hang shows as the deadline passing
                answers.append((None, None, repr(exc)))

        threads = [threading.Thread(target=ask, args=(i,)) for i in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(answers) == 16
        assert {code for code, _, _ in answers} <= {200, 503}, answers
        assert any(code == 200 for code, _, _ in answers)
        for code, retry, body in answers:
            if code == 503:
                assert retry == "1" and body["error"]["code"] == 503
            else:
                assert body["usage"]["completion_tokens"] == 40

        bad = [
            (
                httpx.post(url, content=b"{not json", headers={"content-type": "application/json"}),
                400,
            ),
            (httpx.post(url, json={"prompt": "A", "max_tokens": 10**6}), 400),
            (httpx.post(url, json={"prompt": "A", "temperature": -1}), 400),
            (httpx.post(url, json={"prompt": "A", "model": "gpt-4"}), 404),
            (httpx.post(url, json={"prompt": "A", "n": 3}), 400),
            (httpx.post(url, json={"prompt": "A" * 300_000}), 413),
        ]
        for r, code in bad:
            assert r.status_code == code and r.json()["error"]["message"], (r.status_code, r.text)
        assert httpx.post(url, json={"prompt": "A", "max_tokens": 3}).status_code == 200


def test_sigterm_during_a_stream_ends_it_cleanly_and_exits_143(run, tmp_path):
    args = ["--run", run, *SERVE, "--max-tokens", "1000000"]
    with ServedDemo("austen_net.cli", args, cwd=tmp_path, command="serve") as s:
        body = {"prompt": "Emma", "max_tokens": 1000000, "stream": True}
        with httpx.stream("POST", s.url + "v1/completions", json=body, timeout=300) as r:
            lines = r.iter_lines()
            first = next(line for line in lines if line.startswith("data: "))
            assert json.loads(first[6:])["choices"][0]["finish_reason"] is None
            s.proc.send_signal(signal.SIGTERM)
            rest = [line for line in lines if line.startswith("data: ")]
        assert rest[-1] == "data: [DONE]"
        assert json.loads(rest[-2][6:])["choices"][0]["finish_reason"] == "stop"
        assert s.proc.wait(timeout=120) == 143
        assert "Traceback" not in s.output(), s.output()


def test_bench_serve_measures_its_own_server(run, tmp_path, capsys):
    argv = ["bench", "--serve", "--checkpoint", run / "checkpoints" / "best.pt", "--device", "cpu"]
    argv += ["--serve-requests", "4", "--serve-tokens", "8", "--out", tmp_path / "bench"]
    assert main([str(a) for a in argv]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for c in (1, 4, 16):
        assert out[f"serve_errors_c{c}"] == 0 and out[f"serve_rejected_c{c}"] == 0
        assert out[f"serve_tokens_per_s_c{c}"] > 0 and out[f"serve_p95_ms_c{c}"] > 0
    assert out["serve_batching_speedup_c4"] > 0


def test_a_failing_step_fails_its_requests_and_the_engine_goes_on(run):
    """A decode step that raises (a bug, memory) answers its sequences with an error event (a 500
    or a stream's error object), never leaves them waiting, and the next request is served."""
    import asyncio

    import torch

    from austen_net.generate import StreamDecoder
    from austen_net.inference import load_model
    from austen_net.serve import Engine, Events, Sequence
    from shared.serve import Metrics

    model, tok, _ = load_model(run / "checkpoints" / "best.pt", torch.device("cpu"))
    engine = Engine(model, tok, torch.device("cpu"), max_batch=2, max_queue=4,
                    metrics=Metrics("austen-net"), stop=lambda: False)  # fmt: skip
    loop = asyncio.new_event_loop()

    def ask() -> list[tuple]:
        events = Events(loop)
        seq = Sequence(tok.encode("Emma"), 5, 0.0, None, None, [], torch.Generator(), 0, events,
                       StreamDecoder(tok))  # fmt: skip
        engine.submit([seq])
        got = [loop.run_until_complete(events.queue.get())]
        while got[-1][0] == "text":
            got.append(loop.run_until_complete(events.queue.get()))
        return got

    decode = engine.decode
    engine.decode = lambda: 1 / 0
    failed = ask()
    assert failed[-1][0] == "error" and "division by zero" in failed[-1][2]
    engine.decode = decode
    assert ask()[-1][:3] == ("done", 0, "length")
    engine.close()
    loop.close()
