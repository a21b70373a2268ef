import torch

from austen_net.model import GPT, GPTConfig, sample
from austen_net.tokenizer import CharTokenizer, Tokenizer, build_tokenizer

TEXT = (
    "It is a truth universally acknowledged,\nthat a single man in possession\n\nof a good fortune.\n"
    * 40
)


def tiny(**kw) -> GPT:
    torch.manual_seed(0)
    cfg = dict(vocab_size=50, block_size=32, n_layer=2, n_head=2, n_embd=32, dropout=0.0)
    cfg.update(kw)
    return GPT(GPTConfig(**cfg)).eval()


def test_causal_future_tokens_change_no_earlier_logit():
    for pos in ("rope", "learned"):
        model = tiny(pos=pos)
        x = torch.randint(0, 50, (2, 20))
        y = x.clone()
        y[:, 12:] = (y[:, 12:] + 7) % 50
        a, b = model(x), model(y)
        assert torch.allclose(a[:, :12], b[:, :12], atol=1e-6)
        assert not torch.allclose(a[:, 12:], b[:, 12:])


def test_overfits_one_batch():
    model = tiny(norm="layernorm", mlp="gelu").train()
    opt = model.configure_optimizers(3e-3, 0.0)
    x = torch.randint(0, 50, (4, 33), generator=torch.Generator().manual_seed(0))
    for _ in range(150):
        logits = model(x[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 50), x[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.1


def test_kv_cache_greedy_equals_uncached():
    for pos in ("rope", "learned"):
        model = tiny(pos=pos)
        prompt = torch.randint(0, 50, (1, 5))
        cached = torch.stack(list(model.generate(prompt, 27, temperature=0, use_cache=True)))
        uncached = torch.stack(list(model.generate(prompt, 27, temperature=0, use_cache=False)))
        assert torch.equal(cached, uncached)


def test_generation_runs_past_the_context_window():
    model = tiny()
    out = list(model.generate(torch.zeros(1, 1, dtype=torch.long), 100, temperature=1.0))
    assert len(out) == 100 and all(0 <= int(t) < 50 for t in out)


def test_sampling_filters():
    logits = torch.tensor([[0.0, 1.0, 5.0, 2.0]])
    assert sample(logits, 0, None, None).item() == 2
    g = torch.Generator().manual_seed(0)
    draws = {sample(logits, 1.0, 2, None, g).item() for _ in range(50)}
    assert draws <= {2, 3}
    draws = {sample(logits, 1.0, None, 0.5, g).item() for _ in range(50)}
    assert draws == {2}


def test_bpe_round_trip_and_checkpoint_state(tmp_path):
    tok = build_tokenizer([TEXT], "bpe", 300, tmp_path)
    for s in (TEXT[:200], "  double  spaces\n\n\nand ☃ 漢字 unseen", ""):
        assert tok.decode(tok.encode(s)) == s
    assert "\n" in [tok.sp.id_to_piece(i) for i in tok.encode("a\nb")]
    again = Tokenizer.from_state(tok.state())
    assert again.encode(TEXT[:300]) == tok.encode(TEXT[:300])
    cached = list(tmp_path.glob("bpe-300-*.model"))
    assert len(cached) == 1
    assert build_tokenizer([TEXT], "bpe", 300, tmp_path).proto == tok.proto  # from the cache
    build_tokenizer([TEXT + "x"], "bpe", 300, tmp_path)
    assert len(list(tmp_path.glob("bpe-300-*.model"))) == 2  # another text, another entry


def test_char_tokenizer():
    tok = CharTokenizer("".join(sorted(set(TEXT))))
    assert tok.decode(tok.encode(TEXT)) == TEXT
    assert tok.decode(tok.encode("Z")) == "\ufffd"  # unseen character
    assert Tokenizer.from_state(tok.state()).chars == tok.chars
