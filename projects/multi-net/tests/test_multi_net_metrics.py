import torch

from multi_net.metrics import category_precision_at_k, ranks_of_truth, text_video_metrics
from multi_net.search import ExactSearch, top_k


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


def test_exact_search_matches_brute_force():
    g = torch.Generator().manual_seed(0)
    emb = torch.nn.functional.normalize(torch.randn(20_000, 64, generator=g), dim=1)
    index = ExactSearch(emb, candidates=64)
    for _ in range(5):
        q = torch.nn.functional.normalize(torch.randn(64, generator=g), dim=0)
        s, i = index.search(q, 10)
        s2, i2 = top_k(emb, q, 10)
        assert torch.equal(i, i2) and torch.allclose(s, s2)
    s, i = index.search(emb[7], 5, exclude=7)
    assert 7 not in i.tolist() and len(i) == 5
