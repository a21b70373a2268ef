"""Bad input as users give it: one line naming the problem, exit 2, nothing half-written."""

import pytest

from austen_net.cli import main
from austen_net.config import TrainConfig
from shared.errors import UserError
from shared.runs import save_checkpoint
from testkit import assert_clean_failure


def test_bad_inputs(capsys, corpus, tmp_path):
    other = save_checkpoint(tmp_path / "other.pt", {"model": {}}, project="audio-net")
    partial = save_checkpoint(tmp_path / "partial.pt", {"model": {}}, project="austen-net")
    text = tmp_path / "notes.txt"
    text.write_text("")
    one_line = tmp_path / "tiny_corpus"
    one_line.mkdir()
    (one_line / "105-persuasion.txt").write_text("Anne.\n\nYes.")
    cases = [
        (["generate", "--checkpoint", other], "checkpoint of 'audio-net'"),
        (["generate", "--checkpoint", partial], "lacks model_config, tokenizer, step, config"),
        (["generate", "--checkpoint", tmp_path / "none.pt"], "does not exist"),
        (["generate", "--checkpoint", partial, "--top-k", "-1"], "--top-k: '-1' is outside 0.."),
        (["generate", "--checkpoint", partial, "--top-p", "1.5"], "--top-p: '1.5' is outside ..1"),
        (["train", "--corpus-dir", tmp_path / "nothing"], "not a folder"),
        (
            ["train", "--corpus-dir", one_line, "--tokenizer", "char", "--val-fraction", "0.01"],
            "the validation split holds no text",
        ),
        (
            ["train", "--corpus-dir", corpus, "--holdout-works", "105", "121"],
            "every work is held out",
        ),
        (["evaluate", "--checkpoint", other], "checkpoint of 'audio-net'"),
        (["train", "--corpus-dir", corpus, "--out", text], "is a file, not a folder"),
    ]
    for argv, message in cases:
        assert_clean_failure(main, argv, capsys, message, root=tmp_path)
    assert not (tmp_path / "runs").exists()


def test_generate_requires_a_checkpoint(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["generate"])
    assert exc.value.code == 2 and "--checkpoint" in capsys.readouterr().err


# --- hostile files and huge inputs ------------------------------------------------------------

TINY = ["--preset", "tiny", "--tokenizer", "char", "--batch-size", "4", "--device", "cpu"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from austen_net_data import write_corpus

    root = tmp_path_factory.mktemp("hostile")
    corpus = write_corpus(root / "corpus")
    run = root / "run"
    argv = ["train", *TINY, "--corpus-dir", corpus, "--max-steps", "4", "--eval-every", "2"]
    assert main([str(a) for a in [*argv, "--quiet", "--out", run]]) == 0
    return corpus, run / "checkpoints" / "last.pt"


def test_every_numeric_flag_is_checked_when_parsed(capsys):
    from austen_net.cli import COMMANDS
    from testkit import assert_numeric_flags_checked

    assert assert_numeric_flags_checked(main, COMMANDS, capsys) > 15


def test_flag_ranges(capsys, trained):
    _, ckpt = trained
    for argv in (
        ["generate", "--checkpoint", ckpt, "--seed", "99999999999999999999999"],
        ["generate", "--checkpoint", ckpt, "--seed", "-3"],
        ["generate", "--checkpoint", ckpt, "--temperature", "nan"],
        ["train", "--max-minutes", "0"],
        ["train", "--max-minutes", "-1"],
        ["train", "--max-steps", "0"],
        ["train", "--lr", "0"],
    ):
        with pytest.raises(SystemExit) as exc:
            main([str(a) for a in argv])
        err = capsys.readouterr().err
        assert exc.value.code == 2 and f"argument {argv[-2]}" in err and "Traceback" not in err
    # a config built in code keeps the bounds its flags keep
    with pytest.raises(UserError, match=r"--max-steps is outside 1\.\. \(0\)"):
        TrainConfig(max_steps=0)


def crafted_checkpoints(state: dict) -> dict[str, tuple[dict, str]]:
    import torch

    cfg = state["model_config"]
    return {
        "layers": ({**state, "model_config": {**cfg, "n_layer": 100000}}, "n_layer=100000"),
        "context": ({**state, "model_config": {**cfg, "block_size": 10**10}}, "block_size="),
        "width": ({**state, "model_config": {**cfg, "n_embd": 4096}}, "do not fit"),
        "unknown": (
            {**state, "model_config": {**cfg, "evil": 1}},
            "its model_config is not one this code writes",
        ),
        "layer_count": ({**state, "model_config": {**cfg, "n_layer": 3}}, "say 3 layers"),
        "no_kind": ({**state, "tokenizer": {"chars": "abc"}}, "tokenizer is damaged"),
        "bad_kind": ({**state, "tokenizer": {"kind": "pickle"}}, "tokenizer is damaged"),
        "chars_type": ({**state, "tokenizer": {"kind": "char", "chars": 7}}, "tokenizer"),
        "empty_bpe": (
            {**state, "tokenizer": {"kind": "bpe", "model": torch.zeros(0, dtype=torch.uint8)}},
            "tokenizer is damaged",
        ),
        "garbage_bpe": (
            {
                **state,
                "tokenizer": {"kind": "bpe", "model": torch.randint(0, 255, (999,)).byte()},
            },
            "tokenizer is damaged",
        ),
        "bpe_type": ({**state, "tokenizer": {"kind": "bpe", "model": "x"}}, "tokenizer"),
        "big_vocab": (
            {**state, "tokenizer": {"kind": "char", "chars": "".join(map(chr, range(32, 9000)))}},
            "tokenizer is damaged",
        ),
        "not_dict": ({**state, "tokenizer": [1, 2]}, "tokenizer is damaged"),
        "config_type": (
            {**state, "model_config": "tiny"},
            "its model_config is not one this code writes",
        ),
    }


def test_crafted_checkpoints_are_one_message(capsys, tmp_path, trained):
    import torch

    _, ckpt = trained
    state = torch.load(ckpt, weights_only=True)
    for name, (payload, message) in crafted_checkpoints(state).items():
        path = tmp_path / f"{name}.pt"
        torch.save(payload, path)
        for command in (["generate", "--max-new-tokens", "2"], ["evaluate", "--text", ckpt]):
            argv = [*command, "--checkpoint", path, "--device", "cpu"]
            assert_clean_failure(main, argv, capsys, message)


def test_bpe_tokenizer_bytes_flipped_or_truncated(tmp_path):
    """A real sentencepiece model with bytes flipped or cut: a tokenizer or one message."""
    from austen_net_data import austen_like
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from austen_net.inference import checked_tokenizer
    from austen_net.tokenizer import train_bpe
    from shared.errors import UserError

    proto = bytearray(train_bpe([austen_like(40, 3)], 300).proto)

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(at=st.integers(0, len(proto) - 1), cut=st.integers(0, len(proto)), bit=st.integers(0, 7))
    def check(at, cut, bit):
        import torch

        data = bytearray(proto)
        data[at] ^= 1 << bit
        data = data[: len(data) - cut]
        entry = {
            "kind": "bpe",
            "model": torch.frombuffer(bytearray(data) or bytearray(1), dtype=torch.uint8),
        }
        if not data:
            entry["model"] = torch.zeros(0, dtype=torch.uint8)
        try:
            tok = checked_tokenizer({"tokenizer": entry}, "c.pt", 300)
        except UserError:
            return
        ids = tok.encode("Emma was here.\n")  # a tokenizer that loads encodes into its vocabulary
        assert all(0 <= i < tok.vocab_size for i in ids) and isinstance(tok.decode(ids), str)

    check()


def test_resume_with_other_model_settings_is_refused(capsys, tmp_path, trained):
    corpus, _ = trained
    run = tmp_path / "run"
    argv = ["train", *TINY, "--corpus-dir", corpus, "--max-steps", "4", "--eval-every", "2"]
    assert main([str(a) for a in [*argv, "--quiet", "--out", run]]) == 0
    capsys.readouterr()
    seed_preset = [*argv, "--preset", "seed", "--out", run, "--resume", "latest"]
    assert_clean_failure(main, seed_preset, capsys, "was trained with --preset tiny, not seed")


def test_sigterm_ends_generation_with_143_after_the_text(tmp_path, trained):
    import signal
    import subprocess
    import sys

    _, ckpt = trained
    proc = subprocess.Popen(
        [sys.executable, "-m", "austen_net.cli", "generate", "--checkpoint", str(ckpt)]
        + ["--infinite", "--device", "cpu", "--prompt", "Emma"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**__import__("os").environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout.read(40)  # text is streaming: the model is generating
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 143, err
    assert err.strip().splitlines()[-1] == "austen-net: stopped by SIGTERM"
    assert "Traceback" not in err


def test_data_dir_may_name_the_folder_holding_the_works(capsys, tmp_path, trained):
    corpus, _ = trained
    argv = ["train", *TINY, "--data-dir", corpus, "--max-steps", "2", "--eval-every", "2"]
    assert main([str(a) for a in [*argv, "--quiet", "--out", tmp_path / "run"]]) == 0
    capsys.readouterr()
    empty = tmp_path / "empty"
    empty.mkdir()
    argv = ["train", *TINY, "--data-dir", empty, "--no-download", "--out", tmp_path / "r2"]
    assert_clean_failure(main, argv, capsys, "or pass --corpus-dir DIR (or --data-dir DIR)")
    assert list(empty.iterdir()) == [] and not (tmp_path / "r2").exists()


def test_evaluate_scores_the_runs_own_corpus(capsys, tmp_path, trained):
    """A run trained on --corpus-dir is evaluated on that corpus, not on a download."""
    import json

    corpus, ckpt = trained
    assert main(["evaluate", "--checkpoint", str(ckpt), "--out", str(tmp_path / "ev")]) == 0
    out, err = capsys.readouterr()
    assert f"using the run's own data (--corpus-dir {corpus})" in err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["source"] == "validation split" and summary["bpc"] > 0


def test_generate_loads_no_training_code(trained, tmp_path):
    """`generate` in a fresh interpreter: the model and tokenizer, not the trainer or pyplot."""
    from testkit import TRAINING_ONLY, modules_loaded

    ckpt = trained[1]
    argv = ["generate", "--checkpoint", ckpt, "--max-new-tokens", "5", "--seed", "0"]
    loaded = modules_loaded("austen_net.cli", argv, tmp_path)
    assert "austen_net.inference" in loaded
    assert not loaded & {"austen_net.train", *TRAINING_ONLY}, loaded & {
        "austen_net.train",
        *TRAINING_ONLY,
    }


def test_devices_and_fifos_are_not_text(capsys, tmp_path):
    """--text /dev/zero or a FIFO would be read forever: named, each is one message saying what
    it is; inside a --text folder, skipped with a counted warning."""
    import os

    from austen_net.corpus import text_files

    fifo = tmp_path / "pipe.txt"
    os.mkfifo(fifo)
    cases = [
        (["train", "--text", "/dev/zero", *TINY], "/dev/zero: a character device, not a regular"),
        (["train", "--text", str(fifo), *TINY], "pipe.txt: a FIFO (named pipe), not a regular"),
    ]
    for argv, message in cases:
        assert_clean_failure(main, argv, capsys, message, root=tmp_path)
    (tmp_path / "play.txt").write_text("To be, or not to be.\n")
    assert text_files([tmp_path]) == [tmp_path / "play.txt"]
    assert "skipped 1 .txt entry that are not regular files" in capsys.readouterr().err


def test_a_200_mb_text_costs_what_the_steps_ask(tmp_path):
    """A 200 MB text with --max-steps 5 ran for 20 minutes at 4 GB and did not finish: every
    id went through a Python list, and each evaluation scored all 20 million validation tokens.
    Now the text is encoded into an int32 array and an evaluation scores --eval-tokens (1M,
    spread evenly): in a fresh process the run finishes (about a minute on a 2-core Xeon) under
    3.5 GB peak."""
    import json
    import subprocess
    import sys

    big = tmp_path / "big.txt"
    para = "It is a truth universally acknowledged, that a single man in possession of a good "
    para += "fortune, must be in want of a wife.\n\n"
    with open(big, "w") as fh:
        for i in range(200_000_000 // (len(para) * 1000)):
            fh.write((para + f"Chapter {i}\n\n") * 1000)
    code = (
        "import resource, sys; from austen_net.cli import main;"
        "code = main(sys.argv[1:]);"
        "print('peak_kb', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr);"
        "sys.exit(code)"
    )
    argv = ["train", "--text", str(big), *TINY, "--max-steps", "5", "--out", str(tmp_path / "r")]
    out = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["steps"] == 5 and summary["train_chars"] > 170_000_000
    assert summary["val_tokens_scored"] == 1_000_000  # 15,625 windows of 64: the budget, not 20M
    assert "each evaluation scores 1,000,000 of its" in out.stderr
    peak_kb = int(out.stderr.split("peak_kb")[-1])
    assert peak_kb / 1024 < 3500, f"peak {peak_kb / 1024:.0f} MB"


def test_a_text_written_as_one_line_trains_a_bpe(capsys, tmp_path):
    """sentencepiece drops sentences over its length limit: a text in one 3 MB line left it none
    ('[!sentences_.empty()]'). The trainer now gets the line cut at spaces."""
    from austen_net.tokenizer import train_bpe

    words = [
        "the",
        "quick",
        "brown",
        "fox",
        "jumps",
        "over",
        "a",
        "lazy",
        "dog",
        "while",
        "she",
        "reads",
        "her",
        "letters",
        "again",
    ]
    line = " ".join(words[(i * 7) % len(words)] for i in range(600_000))
    tok = train_bpe([line], 512, quiet=True)  # 13 words support about 400 pieces, not 512
    assert 300 < tok.vocab_size <= 512
    assert tok.decode(tok.encode(line[:5000])) == line[:5000]


def tamper_adamw(state: dict, how: str) -> None:
    """Change ``last.pt``'s optimizer (or model) state the way a hostile or damaged file would."""
    import torch

    opt, group = state["optimizer"]["state"], state["optimizer"]["param_groups"][0]
    changes = {
        "exp_avg": lambda: opt[0].update(exp_avg=torch.zeros(3)),
        "exp_avg_one": lambda: opt[0].update(exp_avg=torch.zeros(1)),
        "exp_avg_scalar": lambda: opt[0].update(exp_avg=torch.tensor(0.0)),
        "exp_avg_sq_int": lambda: opt[1].update(
            exp_avg_sq=torch.zeros(opt[1]["exp_avg_sq"].shape, dtype=torch.int64).T
        ),
        "no_exp_avg_sq": lambda: opt[0].pop("exp_avg_sq"),
        "negative_exp_avg_sq": lambda: opt[0].update(
            exp_avg_sq=-torch.ones_like(opt[0]["exp_avg"])
        ),
        "nan_step": lambda: opt[0].update(step=torch.tensor(float("nan"))),
        "lr_text": lambda: group.update(lr="x"),
        "lr_nan": lambda: group.update(lr=float("nan")),
        "betas_text": lambda: group.update(betas="ab"),
        "eps_list": lambda: group.update(eps=[1, 2]),
        "extra_param": lambda: opt.update({10_000: {"exp_avg": torch.zeros(2)}}),
        "tok_emb": lambda: state["model"].update({"tok_emb.weight": torch.zeros(3, 7)}),
        "nan_weights": lambda: state["model"]["tok_emb.weight"].fill_(float("nan")),
        "schedule_nan": lambda: state["scheduler"].update(base_lrs=[float("nan")]),
    }
    changes[how]()


TAMPERED_RESUMES = {
    "exp_avg": "its optimizer state does not fit the model (exp_avg of a",
    "exp_avg_one": "its optimizer state does not fit the model (exp_avg of a",
    "exp_avg_scalar": "its optimizer state does not fit the model (exp_avg of a",
    "exp_avg_sq_int": "its optimizer state does not fit the model (exp_avg_sq of a",
    "no_exp_avg_sq": "(a parameter's state lacks exp_avg_sq)",
    "negative_exp_avg_sq": "(exp_avg_sq holds negative values",
    "nan_step": "(step nan is not a step count)",
    "lr_text": "(lr 'x' is not a value lr can take)",
    "lr_nan": "(lr nan is not a value lr can take)",
    "betas_text": "(betas 'ab' is not a value betas can take)",
    "eps_list": "(eps [1, 2] is not a value eps can take)",
    "extra_param": "state for a parameter it does not have",
    "tok_emb": "its weights do not fit the model its settings describe",
    "nan_weights": "its weights hold NaN or infinite values (tok_emb.weight)",
    "schedule_nan": "its learning-rate schedule's state is not one this run keeps",
}
RESUME_EACH = """
import contextlib, io, json, sys
from austen_net.cli import main
for argv in json.loads(sys.argv[1]):
    print("case", argv[-1], file=sys.stderr, flush=True)  # the one a crash stopped at
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(argv[:-1])
    print(json.dumps([argv[-1], code, err.getvalue()]), flush=True)
"""


def test_a_tampered_resume_is_one_message(tmp_path, trained):
    """A one-element ``exp_avg`` (or one of the wrong shape) in ``last.pt`` crashed the fused CPU
    AdamW with a segmentation fault (exit 139, no message); mistyped hyper-parameters or a missing
    ``exp_avg_sq`` were tracebacks, NaN values trained to NaN with exit 0. Each is one line and
    exit 2 now, and the refused file is left as it was. The cases run in a fresh process, so a
    crash shows as a failure here (naming its case), not the end of the test session."""
    import json
    import shutil
    import subprocess
    import sys

    import torch

    corpus, ckpt = trained
    cases, files = [], {}
    for tamper in TAMPERED_RESUMES:
        run = tmp_path / tamper
        shutil.copytree(ckpt.parent.parent, run)
        path = run / "checkpoints" / "last.pt"
        state = torch.load(path, weights_only=True)
        tamper_adamw(state, tamper)
        torch.save(state, path)
        files[tamper] = (path, path.read_bytes())
        argv = ["train", *TINY, "--corpus-dir", corpus, "--max-steps", "6", "--eval-every", "2"]
        cases.append([*map(str, argv), "--out", str(run), "--resume", "latest", "--quiet", tamper])
    out = subprocess.run(
        [sys.executable, "-c", RESUME_EACH, json.dumps(cases)], capture_output=True, text=True
    )
    assert out.returncode == 0, (out.returncode, out.stderr[-2000:])
    results = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("[")]
    assert [r[0] for r in results] == list(TAMPERED_RESUMES)
    for tamper, code, err in results:
        assert code == 2, (tamper, err)
        assert "Traceback" not in err and TAMPERED_RESUMES[tamper] in err, (tamper, err)
        path, before = files[tamper]
        assert path.read_bytes() == before, tamper


def test_many_samples_are_drawn_in_batches_that_fit(capsys, monkeypatch, trained):
    """``--num-samples 100000`` put every sample's KV cache in one batch (3.2 GB, then an allocator
    traceback): batches now hold what ``BATCH_CACHE_BYTES`` allows at the full context."""
    from austen_net import generate as gen
    from austen_net.model import GPTConfig

    cfg = GPTConfig(n_layer=6, n_embd=384, n_head=6, block_size=256)
    assert gen.rows_that_fit(cfg) == 64  # 4.7 MB a row: the row cap decides
    assert gen.rows_that_fit(GPTConfig(n_layer=32, n_embd=4096, n_head=32, block_size=8192)) == 1
    assert sum(gen.sample_batches(100_000, 64)) == 100_000
    assert gen.sample_batches(10, 4) == [4, 4, 2]

    _, ckpt = trained
    rows = []
    original = gen.generate

    def spy(model, idx, *args, **kwargs):
        rows.append(idx.shape[0])
        return original(model, idx, *args, **kwargs)

    monkeypatch.setattr(gen, "generate", spy)
    monkeypatch.setattr(gen, "MAX_BATCH_ROWS", 3)
    argv = ["generate", "--checkpoint", ckpt, "--num-samples", "8", "--max-new-tokens", "3"]
    argv += ["--weights", "fp32"]  # (auto would measure each kind with generate calls of its own)
    assert main([str(a) for a in [*argv, "--seed", "1", "--compile", "off"]]) == 0
    out = capsys.readouterr().out
    assert rows == [3, 3, 2]
    assert [f"--- sample {n} ---" in out for n in range(1, 9)] == [True] * 8
