"""Bad input, as users give it: one line naming the problem, exit 2, nothing half-written."""

from pathlib import Path

import pytest
import torch
from audio_net_data import make_gtzan, make_learnable_gtzan

from audio_net.cli import main
from shared.runs import save_checkpoint
from testkit import assert_clean_failure


def test_bad_inputs(capsys, tmp_path):
    other = save_checkpoint(tmp_path / "o.pt", {}, project="austen-net")
    partial = save_checkpoint(tmp_path / "p.pt", {"model": {}}, project="audio-net")
    garbage = tmp_path / "g.pt"
    garbage.write_bytes(b"\x80\x04not a checkpoint")
    one_genre = make_learnable_gtzan(tmp_path / "one", per_genre=5, seconds=1.5, genres=[3])
    two_each = make_gtzan(tmp_path / "two", per_genre=2, seconds=1.5)
    three_each = make_learnable_gtzan(tmp_path / "three", per_genre=3, seconds=1.5, genres=[0, 1])
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    Path("x.wav").write_bytes(b"RIFF")  # exists: the checkpoint is what is refused
    cases = [
        (["predict", "x.wav", "--checkpoint", other], "'austen-net', not 'audio-net'"),
        (["predict", "x.wav", "--checkpoint", partial], "lacks feature_params, split, backbone"),
        (["predict", "x.wav", "--checkpoint", garbage], "not a readable PyTorch checkpoint"),
        (["evaluate", "--checkpoint", tmp_path / "nope.pt"], "does not exist"),
        (["train", "--cv", "1"], "--cv: '1' is outside 2.. (or 0: off)"),
        (["train", "--data-dir", tmp_path, "--no-download"], "data download"),
        (["train", "--data-dir", one_genre, "--no-pretrained"], "one label folder (disco)"),
        (["train", "--data-dir", two_each, "--no-pretrained"], "too few clips of blues, classical"),
        (
            ["train", "--data-dir", two_each, "--cv", "3", "--no-pretrained"],
            "needs at least 3 clips",
        ),
        # weights that cannot be had: refused before the run folder exists (no orphan folder)
        (["train", "--data-dir", three_each, "--weights", tmp_path / "no.pth"], "no such file"),
        (
            ["train", "--data-dir", three_each, "--cv", "2", "--weights", tmp_path / "no.pth"],
            "no such file",
        ),
        (["train", "--out", a_file], "is a file, not a folder"),
        (["train", "--cv", "2", "--resume", "latest"], "not resumable"),
    ]
    for argv, message in cases:
        argv = [*argv, "--cache-dir", tmp_path / "cache"] if argv[0] == "train" else argv
        assert_clean_failure(main, argv, capsys, message, root=tmp_path)
    assert not (tmp_path / "runs").exists()


def test_required_checkpoint(capsys, tmp_path):
    # a checkpoint or an ONNX export: one of them (both or neither is one message)
    assert_clean_failure(main, ["predict", "x.wav"], capsys, "--checkpoint C", root=tmp_path)


def test_never_nan_in_the_summary(capsys, tmp_path):
    """Small data trains, validates and tests on real clips; every number is a number."""
    import json

    root = make_learnable_gtzan(tmp_path / "g", per_genre=3, seconds=2.0, genres=[0, 1])
    argv = [
        "train",
        "--data-dir",
        root,
        "--model",
        "cnn",
        "--no-pretrained",
        "--epochs",
        "2",
        "--quiet",
        "--device",
        "cpu",
        "--cache-dir",
        tmp_path / "cache",
        "--out",
        tmp_path / "r",
    ]
    assert main([str(a) for a in argv]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert "NaN" not in line and json.loads(line)["clips"] == {"train": 2, "val": 2, "test": 2}
    assert torch.isfinite(torch.tensor(json.loads(line)["val_loss"]))


# --- hostile files and huge inputs ------------------------------------------------------------


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    data = make_learnable_gtzan(root / "g", per_genre=3, seconds=2.0, genres=[0, 1])
    argv = ["train", "--data-dir", data, "--model", "cnn", "--no-pretrained", "--epochs", "1"]
    argv += ["--device", "cpu", "--quiet", "--cache-dir", root / "cache", "--out", root / "run"]
    assert main([str(a) for a in argv]) == 0
    return root / "run" / "checkpoints" / "last.pt"


def test_every_numeric_flag_is_checked_when_parsed(capsys):
    from audio_net.cli import COMMANDS
    from testkit import assert_numeric_flags_checked

    assert assert_numeric_flags_checked(main, COMMANDS, capsys) > 10


def test_odd_sample_rates_stay_within_memory(checkpoint, tmp_path):
    """11,027 and 44,101 Hz share no factor with 22,050 Hz: an exact polyphase resampler asked
    for gigabytes (4.9 GB peak for a 44 KB file). Predicting both, in a fresh process, stays
    under 1.5 GB peak resident memory (importing torch alone takes about 0.6 GB)."""
    import json
    import subprocess
    import sys

    import numpy as np
    import soundfile as sf

    files = []
    for rate in (11_027, 44_101):
        t = np.arange(int(2.5 * rate)) / rate
        files.append(tmp_path / f"tone{rate}.wav")
        sf.write(files[-1], (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), rate)
    code = (
        "import json, resource, sys; from audio_net.predict import predict_files;"
        "from audio_net.config import PredictConfig;"
        "r = predict_files(PredictConfig(files=sys.argv[2:], checkpoint=sys.argv[1], device='cpu'));"
        "print(json.dumps([r, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(checkpoint), *map(str, files)],
        capture_output=True,
        text=True,
        check=True,
    )
    results, peak_kb = json.loads(out.stdout.strip().splitlines()[-1])
    assert all("top" in r and r["seconds"] == 2.5 for r in results), results
    assert peak_kb / 1024 < 1500, f"peak {peak_kb / 1024:.0f} MB"


def test_a_two_hour_recording_is_classified_in_flat_memory(checkpoint, tmp_path):
    """A two-hour WAV used to be decoded whole and asked for a 10 GB array. ``predict`` now
    decodes and classifies it 30 s at a time: in a fresh process it stays under 1.5 GB peak,
    answers for the whole file, and lists each segment's top label."""
    import itertools
    import json
    import subprocess
    import sys

    import numpy as np
    import soundfile as sf

    rate, hours = 8_000, 2
    long = tmp_path / "long.wav"
    with sf.SoundFile(long, "w", rate, 1, subtype="PCM_16") as f:  # written a minute at a time
        t = np.arange(60 * rate) / rate
        for minute in range(60 * hours):
            f.write((0.3 * np.sin(2 * np.pi * (220 + minute) * t)).astype(np.float32))
    code = (
        "import resource, sys; from audio_net.cli import main;"
        "code = main(['predict', sys.argv[2], '--checkpoint', sys.argv[1], '--device', 'cpu']);"
        "print('peak_kb', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr);"
        "sys.exit(code)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(checkpoint), str(long)], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-2000:]
    peak_kb = int(out.stderr.split("peak_kb")[-1])
    (result,) = json.loads(out.stdout)
    assert result["seconds"] == hours * 3600 and len(result["top"]) == 2
    segments = result["segments"]
    assert len(segments) == hours * 120 and segments[0]["start"] == 0
    assert segments[-1]["end"] == hours * 3600
    assert all(b["start"] == a["end"] for a, b in itertools.pairwise(segments))
    assert result["windows"] == 19 * len(segments)  # 3 s windows every 1.5 s of 30 s
    assert peak_kb / 1024 < 1500, f"peak {peak_kb / 1024:.0f} MB"


def test_resampling_ratio_is_bounded_and_close():
    from fractions import Fraction

    from audio_net.audio import MAX_RATIO_TERM, resample_ratio

    for rate in (1_000, 7_919, 11_027, 44_101, 48_000, 383_999, 384_000):
        down, up = resample_ratio(rate, 22_050)
        assert max(down, up) <= MAX_RATIO_TERM
        assert abs(Fraction(up * rate, down * 22_050) - 1) < 6e-4
    assert resample_ratio(44_100, 22_050) == (2, 1)  # exact where the exact ratio is small


def test_hostile_audio_and_checkpoints(checkpoint, capsys, tmp_path):

    import numpy as np
    import soundfile as sf

    huge_rate = tmp_path / "mhz.wav"
    sf.write(huge_rate, np.zeros(2_000_000, np.float32), 1_000_003)
    # only unusable files: one line, status 2, nothing on stdout
    assert_clean_failure(
        main,
        ["predict", huge_rate, "--checkpoint", checkpoint],
        capsys,
        "1,000,003 Hz is outside 1,000-384,000 Hz",
    )

    state = torch.load(checkpoint, weights_only=False)
    crafted = {
        "labels.pt": {**state, "labels": [f"g{i}" for i in range(50_000)]},
        "many.pt": {**state, "labels": [f"g{i}" for i in range(1_000_000)]},
        "one.pt": {**state, "labels": ["only"]},
        "rate.pt": {**state, "feature_params": {**state["feature_params"], "sample_rate": 10**12}},
        "fft.pt": {**state, "feature_params": {**state["feature_params"], "n_fft": 2**40}},
        "keys.pt": {**state, "feature_params": {"evil": 1}},
        "backbone.pt": {**state, "backbone": "os.system"},
        "weights.pt": {**state, "model": {"x": torch.zeros(1)}},
        "types.pt": {**state, "labels": "blues"},
        "nolabels.pt": {k: v for k, v in state.items() if k != "labels"},
    }
    messages = {
        "labels.pt": "do not fit",
        "many.pt": "2 or more distinct names",
        "one.pt": "2 or more distinct names",
        "rate.pt": "sample_rate=1000000000000 is outside",
        "fft.pt": "n_fft=1099511627776 is outside",
        "keys.pt": "its feature_params is not one this code writes",
        "backbone.pt": "unknown model",
        "weights.pt": "do not fit",
        "types.pt": "2 or more distinct names",
        "nolabels.pt": "it has no 'labels'",
    }
    wav = tmp_path / "ok.wav"
    sf.write(wav, np.zeros(22050 * 2, np.float32), 22050)
    for name, payload in crafted.items():
        torch.save(payload, tmp_path / name)
        assert_clean_failure(
            main, ["predict", wav, "--checkpoint", tmp_path / name], capsys, messages[name]
        )


def test_demo_flag_limits(capsys):
    for value in ("nan", "inf", "0", "-5"):
        with pytest.raises(SystemExit) as exc:
            main(["demo", "--max-seconds", value])
        assert exc.value.code == 2 and "--max-seconds" in capsys.readouterr().err


def test_flag_refusals_are_one_line_naming_the_flag(capsys):
    """A bad value or a misspelled flag: one line, status 2 (no usage text, no guessing)."""
    for argv, message in (
        (["train", "--epochs", "0"], "argument --epochs: '0' must be at least 1"),
        (["train", "--epochs", "many"], "neither 'auto' nor a number"),
        (["train", "--epoch", "3"], "unrecognized arguments: --epoch 3"),  # not --epochs
        (["train", "--max-minutes", "0"], "argument --max-minutes"),
    ):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        err = capsys.readouterr().err
        assert exc.value.code == 2 and message in err, err
        assert len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("seed", range(3))
def test_random_audio_bytes_are_one_message(tmp_path, seed):
    """Random bytes, truncated real files and extreme headers: a waveform or an AudioError."""
    import io

    import numpy as np
    import soundfile as sf
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from audio_net.audio import AudioError, read_audio

    real = io.BytesIO()
    sf.write(real, np.zeros(4000, np.float32), 8000, format="WAV")
    header = real.getvalue()

    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        body=st.binary(max_size=2048),
        cut=st.integers(0, len(header)),
        rate=st.integers(0, 2**32 - 1),
        mode=st.sampled_from(["random", "truncated", "rate"]),
    )
    def check(body, cut, rate, mode):
        path = tmp_path / f"x{seed}.wav"
        data = {
            "random": body,
            "truncated": header[:cut],
            "rate": header[:24] + rate.to_bytes(4, "little") + header[28:],
        }[mode]
        path.write_bytes(data)
        try:
            wave = read_audio(path, 22050, 0.0)
        except AudioError:
            return
        assert wave.dtype == torch.float32 and torch.isfinite(wave).all()

    check()


def test_500_labels_train_within_memory_and_bounded_figures(tmp_path):
    """500 labels of 3 clips once took 22 GB (a confusion matrix growing with labels squared) and
    was killed before its summary. Trained in a fresh process: under 2.5 GB peak, a summary, and
    every figure a bounded size."""
    import json
    import subprocess
    import sys

    import numpy as np
    import soundfile as sf
    from PIL import Image

    rate, rng = 8000, np.random.default_rng(0)
    for label in range(500):
        folder = tmp_path / "sounds" / f"label{label:03d}"
        folder.mkdir(parents=True)
        t = np.arange(rate) / rate
        for clip in range(3):
            wave = 0.3 * np.sin(2 * np.pi * (100 + 7 * label) * t) + 0.01 * rng.standard_normal(
                rate
            )
            sf.write(folder / f"{clip}.wav", wave.astype(np.float32), rate)
    argv = ["train", "--data-dir", tmp_path / "sounds", "--window-seconds", "1"]
    argv += ["--hop-seconds", "1", "--model", "cnn", "--no-pretrained", "--epochs", "1"]
    argv += ["--device", "cpu", "--quiet", "--cache-dir", tmp_path / "cache"]
    argv += ["--out", tmp_path / "run"]
    code = (
        "import resource, sys; from audio_net.cli import main; code = main(sys.argv[1:]);"
        "print('peak_kb', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); sys.exit(code)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, *map(str, argv)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    peak_mb = int(done.stdout.split("peak_kb")[-1]) / 1024
    assert peak_mb < 2500, f"peak {peak_mb:.0f} MB"
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["clips"] == {"train": 500, "val": 500, "test": 500}
    for figure in (tmp_path / "run" / "figures").glob("*.png"):
        with Image.open(figure) as image:
            assert image.width * image.height < 6_000_000, (figure.name, image.size)


def test_310_thin_labels_are_named_in_a_short_line(capsys, tmp_path):
    """310 labels of 2 clips made a 2.6 KB refusal naming every label: now the first few and
    how many more."""
    import numpy as np
    import soundfile as sf

    from audio_net.cli import main
    from testkit import assert_clean_failure

    for label in range(310):
        folder = tmp_path / "sounds" / f"label{label:03d}"
        folder.mkdir(parents=True)
        for clip in range(2):
            tone = np.sin(np.arange(8000) * (0.05 + label / 5000)).astype(np.float32)
            sf.write(folder / f"{clip}.wav", tone, 8000)
    argv = ["train", "--data-dir", tmp_path / "sounds", "--model", "cnn", "--no-pretrained"]
    argv += ["--device", "cpu", "--quiet", "--cache-dir", tmp_path / "cache"]
    line = assert_clean_failure(main, argv, capsys, "label000, label001, label002")
    assert "and 305 more (310 labels)" in line and len(line) < 400, line
