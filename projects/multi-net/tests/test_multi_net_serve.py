"""`multi-net serve`: text search and recommendation over HTTP, answered as `recommend` answers;
concurrent queries encoded together; bad requests refused with a JSON body."""

import json
import threading

import httpx

from multi_net.cli import main
from testkit import ServedDemo


def recommend(capsys, *args):
    capsys.readouterr()
    assert main(["recommend", *map(str, args)]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])["results"]


def test_search_and_recommend_answer_as_recommend_does(indexed, tmp_path, capsys):
    root, run, index = indexed
    text_hits = recommend(capsys, "--index", index, "--text", "a red square", "--k", "4")
    first = text_hits[0]["video_id"]
    video_hits = recommend(capsys, "--index", index, "--video", first, "--k", "3")
    args = ["--index", index, "--device", "cpu", "--max-wait-ms", "200"]
    with ServedDemo("multi_net.cli", args, cwd=tmp_path, command="serve") as s:
        r = httpx.post(s.url + "v1/search", json={"text": "a red square", "k": 4})
        assert r.status_code == 200, r.text
        assert r.json()["results"] == text_hits
        r = httpx.post(s.url + "v1/recommend", json={"video": first, "k": 3})
        assert r.json()["results"] == video_hits

        answers = []

        def ask(i: int) -> None:
            body = {"text": f"a {['red', 'blue'][i % 2]} circle", "k": 2}
            answers.append(httpx.post(s.url + "v1/search", json=body, timeout=300))

        threads = [threading.Thread(target=ask, args=(i,)) for i in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert [a.status_code for a in answers] == [200] * 12
        metrics = httpx.get(s.url + "metrics").text
        assert float(metrics.split("\nmulti_net_batches ")[1].split()[0]) < 13, metrics

        bad = [
            ("v1/search", {"text": ""}),
            ("v1/search", {"text": "   "}),
            ("v1/search", {"text": "x" * 10_000}),
            ("v1/search", {"text": "a dog", "k": 0}),
            ("v1/recommend", {"video": "no-such-video"}),
            ("v1/recommend", {}),
        ]
        for path, body in bad:
            r = httpx.post(s.url + path, json=body)
            assert r.status_code == 400 and r.json()["error"]["message"], (body, r.text)
        assert httpx.get(s.url + "health").json()["videos"] == 24


def test_bench_serve_measures_its_own_server(indexed, tmp_path, capsys):
    root, run, index = indexed
    argv = ["bench", "--serve", "--index", index, "--device", "cpu", "--serve-requests", "8"]
    assert main([str(a) for a in [*argv, "--out", tmp_path / "b"]]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["serve_videos"] == 24
    for c in (1, 4, 16):
        assert out[f"serve_errors_c{c}"] == 0 and out[f"serve_requests_per_s_c{c}"] > 0
