"""`intro-nn predict mnist --image`: photos of digits a user wrote, dark on light and the reverse,
classified from the command line by a network trained on generated digits."""

import json

import numpy as np
import pytest
from intro_nn_data import FONT, write_digit_idx
from PIL import Image, ImageFilter

from intro_nn.cli import main as cli_main
from intro_nn.inference import read_digit_image
from testkit import assert_clean_failure


def main(argv) -> int:
    return cli_main([str(a) for a in argv])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("digits")
    folder, _ = write_digit_idx(root / "idx")
    run = root / "run"
    argv = ["train", "mnist", "--model", "cnn", "--data-dir", folder, "--epochs", "8"]
    assert main([*argv, "--no-sklearn", "--device", "cpu", "--out", run, "--quiet"]) == 0
    return run


def photo(digit: int, path, light_paper: bool, seed: int):
    """A digit written large on a sheet of paper photographed unevenly: the paper a grey with a
    gradient and noise, the ink blurred, the digit off-centre; saved as JPEG or PNG."""
    rng = np.random.default_rng(seed)
    h, w = 300, 240
    shade = np.linspace(0, 30, w)[None, :] + rng.normal(0, 6, (h, w))
    glyph = np.kron(np.array([[int(b) for b in r] for r in FONT[digit]], float), np.ones((36, 36)))
    ink = np.zeros((h, w))
    top, left = 60 + rng.integers(-20, 20), 60 + rng.integers(-20, 20)
    ink[top : top + 180, left : left + 108] = glyph
    paper, pen = (205.0, 40.0) if light_paper else (35.0, 220.0)
    gray = paper + (shade if light_paper else -shade / 2) + ink * (pen - paper)
    image = Image.fromarray(np.clip(gray, 0, 255).astype(np.uint8)).filter(ImageFilter.BLUR)
    image.convert("RGB").save(path, quality=85) if path.suffix == ".jpg" else image.save(path)
    return path


def test_photos_of_digits_are_read_both_ways(capsys, trained, tmp_path):
    files, truth = [], []
    for digit in range(10):
        files.append(photo(digit, tmp_path / f"{digit}-light.jpg", True, digit))
        files.append(photo(digit, tmp_path / f"{digit}-dark.png", False, 10 + digit))
        truth += [digit, digit]
    assert main(["predict", "mnist", "--run", trained, "--image", *files, "--device", "cpu"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["image"] for r in rows] == [str(f) for f in files]
    for row in rows:
        probs = [t["probability"] for t in row["top3"]]
        assert len(probs) == 3 and probs == sorted(probs, reverse=True) and sum(probs) <= 1.0001
        assert row["digit"] == row["top3"][0]["digit"]
    correct = sum(r["digit"] == t for r, t in zip(rows, truth, strict=True))
    accuracy = json.loads((trained / "summary.json").read_text())["test_accuracy"]
    # chance is 2 of 20; the photos score about as well as the model's own test digits
    assert correct >= 16 and correct / 20 >= accuracy - 0.15, (accuracy, rows)

    # the same digit from --checkpoint, and a light-on-dark photo becomes white-on-black too
    ckpt = trained / "checkpoints" / "best.pt"
    assert main(["predict", "mnist", "--checkpoint", ckpt, "--image", files[1]]) == 0
    assert json.loads(capsys.readouterr().out)[0]["top3"] == rows[1]["top3"]
    digit = read_digit_image(files[1])
    assert digit.shape == (28, 28) and digit[0].max() == 0 and digit.max() > 200


def test_bad_images_are_one_message(capsys, trained, tmp_path):
    blank = tmp_path / "blank.jpg"
    Image.fromarray(np.full((200, 150), 210, np.uint8)).save(blank)
    text = tmp_path / "notes.png"
    text.write_text("not an image at all")
    huge = tmp_path / "huge.png"
    Image.new("L", (9000, 5000), 255).save(huge)
    run = ["predict", "mnist", "--run", trained]
    cases = [
        ([*run, "--image", blank], "shows no ink"),
        ([*run, "--image", text], "is not an image"),
        ([*run, "--image", huge], "megapixels"),
        ([*run, "--image", tmp_path / "gone.png"], "no such file"),
        ([*run], "needs --image"),
        (["predict", "mnist", "--run", tmp_path, "--image", blank], "intro-nn train mnist"),
        (["predict", "loan", "--run", trained], "needs --run"),
    ]
    for argv, message in cases:
        assert_clean_failure(cli_main, argv, capsys, message, root=tmp_path)


def test_images_past_pillows_bomb_limits_are_refused_quietly(capsys, trained, tmp_path):
    """100 MP (Pillow warns) and 196 MP (Pillow raises): one line each, no Pillow warning."""
    import warnings

    run = ["predict", "mnist", "--run", trained]
    for side in (10_001, 14_000):
        bomb = tmp_path / f"bomb{side}.png"
        Image.new("1", (side, side), 1).save(bomb)  # 1 bit a pixel: small to write
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            line = assert_clean_failure(cli_main, [*run, "--image", bomb], capsys, "megapixels")
        assert "scale it down first" in line


def test_predict_mnist_loads_no_training_code(trained, tmp_path):
    """`predict mnist` in a fresh interpreter: the network and the image code, not the trainer."""
    from testkit import TRAINING_ONLY, modules_loaded

    image = photo(3, tmp_path / "3.png", True, 0)
    loaded = modules_loaded(
        "intro_nn.cli", ["predict", "mnist", "--run", trained, "--image", image], tmp_path
    )
    assert "intro_nn.inference" in loaded
    banned = {"intro_nn.train", "intro_nn.loan", *TRAINING_ONLY}
    assert not loaded & banned, loaded & banned
