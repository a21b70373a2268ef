"""The README as a reader uses it: its commands parse with this CLI, its links exist, its offline
block runs as written, and a flag that does not exist fails the check."""

from pathlib import Path

from audio_net.cli import COMMANDS, DESCRIPTION, PROG, main
from testkit import (
    project_readme,
    python_blocks,
    run_offline_block,
    run_shell_block,
    section,
    shell_blocks,
)

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_commands_parse_links_exist_and_a_made_up_flag_fails():
    readme = project_readme(README, PROG, DESCRIPTION, COMMANDS)
    assert readme.size_bytes <= 8 * 1024  # a project README stays under 8 KB: depth in NOTES.md
    assert readme.commands_parsed >= 5 and readme.links >= 3 and readme.notes_links >= 1
    assert readme.made_up_flag_refused


def listing(folder: Path) -> dict:
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.rglob("*"))}


def test_the_offline_block_runs_as_written(capsys):
    """The README's first block, pasted in a fresh clone with nothing beside it: ``data sample``
    makes the set, every command exits 0, the demo line serves the run the block trained, and
    the feature cache goes to the cache root, not into the sample's folder."""
    assert run_offline_block(README, PROG, main, None) >= 5
    sample = Path("data/sounds-sample")
    assert (sample / "new-recording.wav").is_file()
    assert not list(sample.rglob("*.pt"))
    assert list(Path("data/cache/audio-net").glob("features-*.pt"))


def test_the_sample_without_espeak_is_tones_and_chirps(capsys, monkeypatch):
    """Where espeak-ng is not installed, ``data sample`` generates four kinds of sound; run again,
    it keeps the folder it made."""
    from audio_net import sample

    monkeypatch.setattr(sample, "espeak", lambda: None)
    assert main(["data", "sample"]) == 0
    root = Path("data/sounds-sample")
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == [
        "chirp-down",
        "chirp-up",
        "tone-high",
        "tone-low",
    ]
    assert len(list(root.rglob("*.wav"))) == 49
    before = listing(root)
    assert main(["data", "sample"]) == 0
    assert listing(root) == before and "already there" in capsys.readouterr().err
    # a folder of that name holding something else is refused (it said "already there", exit 0)
    (root / "tone-low").rename(root / "junk")
    assert main(["data", "sample"]) == 2
    assert "holds files that are not this sample" in capsys.readouterr().err
    assert (root / "junk").is_dir() and not (root / "tone-low").exists()


def test_the_export_section_runs_as_written(capsys):
    """A small model where the README's export command reads it; then the commands and the
    onnxruntime snippet exactly as the README shows them."""
    import numpy as np
    import soundfile as sf
    from test_audio_net_own_labels import LABELS, write_sounds

    data = write_sounds(Path("sounds"), per_label=4)
    argv = ["train", "--data-dir", "sounds", "--model", "cnn", "--no-pretrained", "--epochs", "1"]
    argv += ["--window-seconds", "1", "--hop-seconds", "0.5", "--device", "cpu", "--quiet"]
    assert main([*argv, "--out", "runs/offline/audio-net"]) == 0
    sf.write("clip.wav", np.zeros(22050, np.float32) + 0.01, 22050)
    text = section(README.read_text(), "Export to ONNX")
    capsys.readouterr()
    assert run_shell_block(shell_blocks(text)[0], PROG, main) == 2
    printed = capsys.readouterr().out
    assert '"label"' in printed and "model.onnx" in printed  # predict --onnx answered
    exec(python_blocks(text)[0], {})
    assert capsys.readouterr().out.strip() in LABELS and data.is_dir()


def test_the_own_sounds_recipe_reaches_the_baseline_on_spoken_words(capsys):
    """The README's own-sounds block, as written, on words spoken by espeak-ng voices (48 clips):
    the network's test clip accuracy is at least the classical baseline's, then predict and demo
    follow in the README's order."""
    import json
    import shutil

    import pytest

    from audio_net.sample import espeak, write_spoken_words

    if espeak() is None:
        pytest.skip("espeak-ng is not installed (.ci/run installs it)")
    words = write_spoken_words(
        Path("my-sounds"),
        words=("yes", "no", "stop", "go"),
        voices=("en-gb", "en-us", "en-029"),
        speeds=(130, 190),
        pitches=(35, 65),
    )
    shutil.copy(next((words / "stop").glob("*.wav")), "new-recording.wav")
    block = shell_blocks(section(README.read_text(), "Classify your own sounds"))[0]
    assert run_shell_block(block, PROG, main) == 3
    summary = json.loads(Path("runs/my-sounds/summary.json").read_text())
    assert summary["test_clips"] == 12 and summary["planned_epochs"] > 10
    assert summary["test_clip_accuracy"] >= summary["baseline_clip_accuracy"], summary
