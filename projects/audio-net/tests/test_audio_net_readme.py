"""The README as a reader uses it: its commands parse with this CLI, its links exist, its offline
block runs as written, and a flag that does not exist fails the check."""

from pathlib import Path

from audio_net.cli import COMMANDS, DESCRIPTION, PROG, main
from testkit import (
    check_project_readme,
    python_blocks,
    run_offline_block,
    run_shell_block,
    section,
    shell_blocks,
)

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_commands_parse_links_exist_and_a_made_up_flag_fails():
    check_project_readme(README, PROG, DESCRIPTION, COMMANDS)


def test_the_offline_block_runs_as_written(real_data, capsys):
    """The README's first block, pasted: every command exits 0 on the real samples."""
    assert run_offline_block(README, PROG, main, real_data) >= 3


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
