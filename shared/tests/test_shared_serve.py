"""shared.serve in-process: the batcher's bounds and failures, and the app's answers to what
goes wrong (JSON bodies, 413, 500, 503 with Retry-After), counted in /metrics."""

import threading
import time

import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel

from shared.serve import Batcher, Metrics, QueueFull, create_app


def test_batcher_answers_together_refuses_past_its_queue_and_survives_a_failing_batch():
    gate, sizes = threading.Event(), []

    def run(items):
        gate.wait()
        sizes.append(len(items))
        if "boom" in items:
            raise RuntimeError("boom")
        return [x * 2 for x in items]

    batcher = Batcher(run, max_batch=4, max_wait_ms=1000, max_queue=3)
    first = batcher.submit(1)  # taken by the worker at once, which then waits on the gate
    while batcher.depth:  # until the worker has taken it
        time.sleep(0.001)
    waiting = [batcher.submit(x) for x in (2, 3, 4)]
    with pytest.raises(QueueFull):
        batcher.submit(5)  # the queue holds 3
    gate.set()
    assert first.result(60) == 2 and [f.result(60) for f in waiting] == [4, 6, 8]
    assert sizes == [1, 3]  # the three waiting ones in one batch
    bad = batcher.submit("boom")
    with pytest.raises(RuntimeError, match="boom"):
        bad.result(60)
    assert batcher.submit(10).result(60) == 20  # the worker goes on
    batcher.close()


class Body(BaseModel):
    x: int


def test_every_refusal_is_json_and_counted():
    metrics = Metrics("demo-project")
    app = create_app("demo-project", {"model": "m"}, metrics, max_body_bytes=100)

    @app.post("/echo")
    async def echo(body: Body):
        if body.x == 0:
            raise QueueFull("3 requests are waiting")
        if body.x < 0:
            raise ValueError("negative")
        return {"x": body.x}

    client = TestClient(app, raise_server_exceptions=False)
    assert client.post("/echo", json={"x": 2}).json() == {"x": 2}
    r = client.post("/echo", json={"x": "two"})
    assert r.status_code == 400 and "x" in r.json()["error"]["message"]
    r = client.post("/echo", content=b"{", headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
    r = client.post("/echo", json={"x": 1, "pad": "y" * 200})
    assert r.status_code == 413 and "100 bytes" in r.json()["error"]["message"]
    r = client.post("/echo", json={"x": 0})
    assert r.status_code == 503 and r.headers["retry-after"] == "1"
    r = client.post("/echo", json={"x": -1})
    assert r.status_code == 500 and "ValueError: negative" in r.json()["error"]["message"]
    assert client.get("/health").json() == {"status": "ok", "model": "m"}
    text = client.get("/metrics").text
    assert 'demo_project_requests_total{route="/echo",status="200"} 1' in text
    assert 'demo_project_requests_total{route="/echo",status="503"} 1' in text
    assert 'demo_project_request_seconds_count{route="/echo"}' in text
