import pytest
import torch
from torch import nn

from multi_net.bench import search_ms
from multi_net.model import (
    category_precision_at_k,
    decay_groups,
    ranks_of_truth,
    text_video_metrics,
)
from multi_net.search import ExactSearch, _int8_available, top_k


def test_planted_embeddings_give_hand_computed_metrics():
    # 4 videos on the axes; 4 captions, one per video, planted so that their true video ranks
    # 1, 2, 1, 4 for t2v.
    video = torch.eye(4)
    text = torch.tensor(
        [
            [1.0, 0.0, 0.0, 0.0],  # caption 0 -> video 0 first          (rank 1)
            [0.9, 0.5, 0.0, 0.0],  # caption 1 -> video 0 beats video 1   (rank 2)
            [0.0, 0.0, 1.0, 0.2],  # caption 2 -> video 2 first          (rank 1)
            [0.5, 0.4, 0.3, 0.1],  # caption 3 -> video 3 last           (rank 4)
        ]
    )
    truth = torch.tensor([0, 1, 2, 3])
    assert ranks_of_truth(text @ video.T, truth).tolist() == [1, 2, 1, 4]
    m = text_video_metrics(text, video, truth)
    assert m["t2v_r1"] == 50.0 and m["t2v_r5"] == 100.0 and m["t2v_r10"] == 100.0
    assert m["t2v_median_rank"] == 1.5 and m["t2v_mean_rank"] == 2.0
    # v2t: video 0 ranks captions [1 (0.9)... no: column 0 = [1.0, 0.9, 0.0, 0.5] -> caption 0 first (rank 1)
    # video 1: column [0, .5, 0, .4] -> caption 1 first (1); video 2: [0, 0, 1, .3] -> caption 2 (1);
    # video 3: [0, 0, .2, .1] -> caption 2 (.2), caption 3 (.1) -> rank 2
    assert m["v2t_r1"] == 75.0 and m["v2t_median_rank"] == 1.0 and m["v2t_mean_rank"] == 1.25


def test_category_precision():
    emb = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    emb = torch.nn.functional.normalize(emb, dim=1)
    # nearest other video: 0<->1 (same category), 2<->3 (different categories)
    assert category_precision_at_k(emb, torch.tensor([0, 0, 1, 2]), k=1) == 50.0


SCANS = ["bf16"] + (["int8"] if _int8_available(torch.device("cpu")) else [])


def _queries(emb: torch.Tensor, g: torch.Generator) -> list[torch.Tensor]:
    d = emb.shape[1]
    heavy = torch.randn(d, generator=g) * torch.rand(d, generator=g) ** 4
    return [
        *torch.nn.functional.normalize(torch.randn(4, d, generator=g), dim=1),
        emb[3].clone(),  # a stored row: its own best match
        torch.nn.functional.one_hot(torch.tensor(5), d).float(),  # one coordinate
        heavy * 10,  # heavy-tailed and not unit norm
        -emb[11] + 0.01 * torch.randn(d, generator=g),  # all entries of one sign flipped
    ]


def _assert_exact(emb, q, scores, rows, k, exclude=None):
    """The same top k as a full fp32 scan, up to the order of scores equal within fp32 rounding."""
    truth, _ = top_k(emb, q, k, exclude)
    assert len(set(rows.tolist())) == k and exclude not in rows.tolist()
    assert torch.allclose(scores, truth, atol=1e-5)
    assert torch.allclose(emb[rows] @ q, scores, atol=1e-5)


@pytest.mark.parametrize("scan", SCANS)
def test_exact_search_matches_brute_force(scan):
    g = torch.Generator().manual_seed(0)
    emb = torch.nn.functional.normalize(torch.randn(20_000, 64, generator=g), dim=1)
    # clusters of near-duplicates: many scores within the error bound of each other
    emb[:2_000] = torch.nn.functional.normalize(
        emb[:20].repeat(100, 1) + 0.01 * torch.randn(2_000, 64, generator=g), dim=1
    )
    index = ExactSearch(emb, scan=scan)
    assert index.scan == scan
    for q in _queries(emb, g):
        for k in (1, 10, 100):
            s, i = index.search(q, k)
            _assert_exact(emb, q, s, i, k)
    s, i = index.search(emb[7], 5, exclude=7)
    _assert_exact(emb, emb[7], s, i, 5, exclude=7)
    small = ExactSearch(emb[:50], scan=scan)  # below the probe size: a plain scan
    assert torch.equal(small.search(emb[0], 3)[1], top_k(emb[:50], emb[0], 3)[1])
    most = ExactSearch(emb[:300], scan=scan)  # k close to n
    _assert_exact(emb[:300], emb[1], *most.search(emb[1], 299, exclude=1), 299, exclude=1)


@pytest.mark.parametrize("scan", SCANS)
def test_scan_error_bound_holds(scan):
    g = torch.Generator().manual_seed(1)
    emb = torch.nn.functional.normalize(torch.randn(5_000, 512, generator=g), dim=1)
    index = ExactSearch(emb, scan=scan)
    for q in _queries(emb, g):
        err = (index.approx.scores(q) - emb @ q).abs().max()
        assert err <= index.approx.error_bound(q)


@pytest.mark.skipif("int8" not in SCANS, reason="no fbgemm (x86) quantized engine")
def test_int8_scan_is_the_integer_arithmetic_the_bound_assumes():
    # the bound assumes fbgemm quantizes the query over [min(q, 0), max(q, 0)] with 127 levels
    # and then computes exact int32 dot products: emulate that and compare
    g = torch.Generator().manual_seed(2)
    emb = torch.nn.functional.normalize(torch.randn(3_000, 512, generator=g), dim=1)
    scale = (emb.abs().amax(1) / 127).double()
    w = torch.quantize_per_channel(emb, scale, torch.zeros(3_000, dtype=torch.long), 0, torch.qint8)
    index = ExactSearch(emb, scan="int8")
    for q in _queries(emb, g):
        qq = torch.quantize_per_tensor_dynamic(q, torch.quint8, True)
        step = (max(float(q.max()), 0.0) - min(float(q.min()), 0.0)) / 127
        assert qq.q_scale() == pytest.approx(step, rel=1e-6)
        assert (qq.dequantize() - q).abs().max() <= step / 2 * (1 + 1e-5)
        dots = w.int_repr().long() @ (qq.int_repr().long() - qq.q_zero_point())
        emulated = dots.double() * scale * qq.q_scale()
        got = index.approx.scores(q).double()
        assert (got - emulated).abs().max() <= 1e-6 * (1 + emulated.abs().max())


def test_search_bench_reports_exact_answers():
    out = search_ms(3_000, dim=32, queries=3)
    assert out["recall"] == 1.0 and out["ms"] > 0 and out["fp32_ms"] > 0


def test_search_falls_back_to_bf16_without_int8_ops(monkeypatch):
    import multi_net.search as search

    def missing(self, fp32):
        raise RuntimeError("quantized::linear_prepack is not available")

    monkeypatch.setattr(search._Int8Scan, "__init__", missing)
    monkeypatch.setattr(search, "_int8_available", lambda device: True)
    g = torch.Generator().manual_seed(3)
    emb = torch.nn.functional.normalize(torch.randn(2_000, 32, generator=g), dim=1)
    index = ExactSearch(emb)
    assert index.scan == "bf16"
    _assert_exact(emb, emb[9], *index.search(emb[9], 10), 10)
    with pytest.raises(RuntimeError):
        ExactSearch(emb, scan="int8")


def test_decay_groups_split_matrices_from_vectors():
    model = nn.Sequential(nn.Embedding(5, 4), nn.Linear(4, 4), nn.LayerNorm(4))
    decay, no_decay = decay_groups(model.named_parameters(), 0.1, lr=3.0)
    assert [p.shape for p in decay["params"]] == [(5, 4), (4, 4)] and decay["weight_decay"] == 0.1
    assert [p.shape for p in no_decay["params"]] == [(4,), (4,), (4,)]
    assert no_decay["weight_decay"] == 0.0 and no_decay["lr"] == 3.0
