"""The fixed-shape decode step: eager and compiled, it gives the tokens of today's cached path
(greedy and seeded sampling, across context slides, fp32, bf16 and weight-only int8); fbgemm's
dynamic int8 stays eager; the CLI's --compile says what it paid."""

import copy
import re
from pathlib import Path

import pytest
import torch

from austen_net.cli import main
from austen_net.decode import (
    Decoder,
    RowReduction,
    compiled_decoder,
    generate,
    with_row_reductions,
)
from austen_net.inference import with_weights
from austen_net.model import GPT, GPTConfig


def tiny(**kw) -> GPT:
    torch.manual_seed(0)
    cfg = dict(vocab_size=50, block_size=32, n_layer=2, n_head=4, n_embd=32, dropout=0.0)
    return GPT(GPTConfig.from_dict({**cfg, **kw})).eval()


def tokens(model, step=None, **sampling) -> torch.Tensor:
    prompt = torch.randint(0, 50, (2, 5), generator=torch.Generator().manual_seed(1))
    g = torch.Generator().manual_seed(7)
    new = generate(model, prompt, 100, generator=g, step=step, **sampling)  # 100 > context 32
    return torch.stack(list(new), dim=1)


@pytest.mark.parametrize(
    "shape", [{}, {"pos": "learned", "norm": "layernorm", "mlp": "gelu"}, {"n_kv_head": 2}]
)
def test_eager_decode_step_gives_the_cached_paths_tokens(shape):
    model = tiny(**shape)
    for sampling in ({"temperature": 0.0}, {"temperature": 0.9, "top_k": 10}):
        assert torch.equal(
            tokens(model, Decoder(model, compile=False), **sampling), tokens(model, **sampling)
        )


def test_compiled_decode_step_gives_the_same_tokens_fp32_and_bf16():
    model = tiny()
    step = compiled_decoder(model)
    sampled = {"temperature": 0.9, "top_k": 10}
    assert torch.equal(tokens(model, step, **sampled), tokens(model, **sampled))
    assert torch.equal(tokens(model, step, temperature=0.0), tokens(model, temperature=0.0))
    bf16 = with_weights(copy.deepcopy(model), "bf16")
    fast = tokens(bf16, compiled_decoder(bf16), temperature=0.0)
    assert torch.equal(fast, tokens(bf16, temperature=0.0))


def test_compiled_decode_step_gives_the_same_tokens_with_weight_only_int8():
    model = with_weights(tiny(), "int8", int8_kernel="weight-only")
    step = compiled_decoder(model)
    assert step is not None
    assert torch.equal(tokens(model, step, temperature=0.0), tokens(model, temperature=0.0))
    sampled = {"temperature": 0.9, "top_k": 10}
    assert torch.equal(tokens(model, step, **sampled), tokens(model, **sampled))


@pytest.mark.parametrize("weights", ["fp32", "bf16", "int8"])
def test_the_reduction_kernel_answers_as_the_library_does(weights):
    """The decode step's products as reductions (``RowReduction``): fp32 gives the library's
    tokens and logits; bf16 and int8 (summed in fp32) stay within a hundredth of a nat of them, a
    fraction of the 0.005 bits/char ``--weights auto`` allows."""
    model = tiny(vocab_size=50)
    if weights != "fp32":
        model = with_weights(model, weights, int8_kernel="weight-only")
    blas = compiled_decoder(model, kernel="blas")
    reduction = compiled_decoder(model, kernel="reduction")
    if weights == "fp32":
        assert torch.equal(
            tokens(model, reduction, temperature=0.0), tokens(model, blas, temperature=0.0)
        )
    prompt = torch.randint(0, 50, (2, 9), generator=torch.Generator().manual_seed(2))
    steps = []
    for step in (blas, reduction):  # the logits of one step after the same prompt
        captured = []

        def spy(tokens_, pos, cache, step=step, captured=captured):
            captured.append(step(tokens_, pos, cache).float().log_softmax(-1))
            return captured[-1]

        list(generate(model, prompt, 3, temperature=0.0, step=spy))
        steps.append(torch.stack(captured))
    gap = (steps[0] - steps[1]).abs().max().item()
    assert gap < (1e-4 if weights == "fp32" else 1e-2), gap


def test_row_reductions_share_the_weights_and_leave_the_model_as_it_was():
    model = tiny()
    view = with_row_reductions(model)
    assert {p.data_ptr() for p in view.parameters()} == {p.data_ptr() for p in model.parameters()}
    assert not any(isinstance(m, RowReduction) for m in model.modules())
    assert sum(isinstance(m, RowReduction) for m in view.modules()) == 2 * 4 + 1  # + the head
    x = torch.randn(3, 32)  # more rows than REDUCTION_ROWS: the library's product
    assert torch.equal(view.head(x), model.head(x))


def test_dynamic_int8_weights_are_not_compiled():
    assert compiled_decoder(with_weights(tiny(), "int8", int8_kernel="dynamic")) is None


def test_generate_compile_on_writes_what_off_writes(corpus, tmp_path, capsys):
    run = tmp_path / "run"
    train = ["train", "--preset", "tiny", "--tokenizer", "char", "--corpus-dir", str(corpus)]
    assert main([*train, "--max-steps", "30", "--quiet", "--out", str(run)]) == 0
    capsys.readouterr()
    argv = ["generate", "--checkpoint", str(run / "checkpoints" / "best.pt"), "--seed", "3"]
    argv += ["--max-new-tokens", "150", "--prompt", "Anne"]  # past the context of 64
    argv += ["--weights", "fp32"]  # (auto measures, and may choose bf16 or int8 by timing)
    assert main([*argv, "--compile", "off"]) == 0
    eager = capsys.readouterr()
    assert main([*argv, "--compile", "on"]) == 0
    compiled = capsys.readouterr()
    assert compiled.out == eager.out and len(compiled.out) > 100
    assert "compiled the decode step in" in compiled.err
    assert "compiled" not in eager.err
    # the speed the reader saw, with the weights and the path that gave it
    assert "tokens/s (fp32 weights, compiled decode step, cpu" in compiled.err
    assert "tokens/s (fp32 weights, eager decode step, cpu" in eager.err
    assert main([*argv, "--compile", "auto"]) == 0  # 150 tokens do not repay a CPU compile
    assert "compiled" not in capsys.readouterr().err


def test_the_speed_line_leaves_the_compile_out(monkeypatch):
    """The compile happens at the first one-token step (the second token): a compiled run's rate
    leaves it out, as an eager run's leaves out the prompt's token (clock scripted: 10 s of
    compile, then 10 ms a token)."""
    from austen_net import generate as gen

    def rate(compiled: bool) -> float:
        clock = iter([0.0, 10.0, *(10.0 + 0.01 * i for i in range(1, 9))])
        monkeypatch.setattr(gen.time, "perf_counter", lambda: next(clock))
        speed = gen.Speed(compiled)
        assert len(list(speed.count(range(10), rows=1))) == 10
        return speed.tokens / speed.seconds

    assert round(rate(True)) == 100  # the 8 tokens after the compile, 10 ms each
    assert rate(False) < 1  # the same run counted from the first token: the compile inside
    assert "first two tokens not counted" in gen.Speed(True).line("fp32", "cpu")


def test_num_samples_in_one_batch_write_what_one_after_another_write(corpus, tmp_path, capsys):
    """Greedy, every sample is the same text whether drawn in one batch or one at a time; sampled,
    a batch's samples differ from each other and the same seed draws the same batch again."""
    run = tmp_path / "run"
    train = ["train", "--preset", "tiny", "--tokenizer", "char", "--corpus-dir", str(corpus)]
    assert main([*train, "--max-steps", "30", "--quiet", "--out", str(run)]) == 0
    capsys.readouterr()
    argv = ["generate", "--checkpoint", str(run / "checkpoints" / "best.pt"), "--prompt", "Anne"]
    argv += ["--max-new-tokens", "80", "--num-samples", "3", "--compile", "off"]
    assert main([*argv, "--temperature", "0"]) == 0
    batched = capsys.readouterr().out
    assert main([*argv, "--temperature", "0", "--no-batch-samples"]) == 0
    assert capsys.readouterr().out == batched
    samples = written_samples(batched)
    assert len(samples) == 3 and len(set(samples)) == 1

    assert main([*argv, "--seed", "5", "--temperature", "1"]) == 0
    drawn = capsys.readouterr().out
    texts = written_samples(drawn)
    assert len(texts) == 3 and len(set(texts)) == 3 and all(t.startswith("Anne") for t in texts)
    assert main([*argv, "--seed", "5", "--temperature", "1"]) == 0
    assert capsys.readouterr().out == drawn


def written_samples(out: str) -> list[str]:
    """The texts of ``--- sample N ---`` sections, in order."""
    return [text.rstrip("\n") for text in re.split(r"\n--- sample \d+ ---\n", out)[1:]]


def test_a_decoder_is_its_callers_and_a_copy_of_the_model_gets_its_own():
    model = tiny()
    greedy = tokens(model, temperature=0.0)
    prompt = torch.randint(0, 50, (2, 5), generator=torch.Generator().manual_seed(1))
    decoder = compiled_decoder(model)  # compiled once, used for every generation that follows
    for _ in range(2):
        fast = torch.stack(list(generate(model, prompt, 100, temperature=0.0, step=decoder)), 1)
        assert torch.equal(fast, greedy)
    other = copy.deepcopy(model)
    with torch.no_grad():
        other.head.weight.mul_(-1)  # the copy's own weights, not the original's
    mine = generate(other, prompt, 20, temperature=0.0, step=compiled_decoder(other))
    assert torch.equal(torch.stack(list(mine), dim=1), tokens(other, temperature=0.0)[:, :20])


def test_compile_auto_decodes_eagerly_on_busy_cpus(monkeypatch, capsys):
    """Beside two busy loops on 2 cores, compiled decoding ran 9.3 tokens/s where eager ran 24.2:
    ``auto`` compiles a long generation on idle CPUs only, and says why when it does not."""
    from austen_net import generate as generate_module
    from austen_net.config import GenerateConfig

    long = GenerateConfig(checkpoint=Path("x.pt"), max_new_tokens=40_000)
    cpu = torch.device("cpu")
    monkeypatch.setattr(generate_module, "cpu_load", lambda: 0.1)
    assert generate_module.compile_pays_off(long, cpu)
    assert not generate_module.compile_pays_off(GenerateConfig(checkpoint=Path("x.pt")), cpu)
    monkeypatch.setattr(generate_module, "cpu_load", lambda: 2.2)
    assert not generate_module.compile_pays_off(long, cpu)
    assert "the CPUs are busy: load 2.2 per core" in capsys.readouterr().err
    monkeypatch.setattr(generate_module, "cpu_load", lambda: None)  # a system that does not say
    assert generate_module.compile_pays_off(long, cpu)
