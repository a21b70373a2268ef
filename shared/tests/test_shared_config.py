import dataclasses
from pathlib import Path
from typing import Literal

import pytest

from shared.config import (
    Command,
    RunConfig,
    UserError,
    arg,
    build_parser,
    from_namespace,
    not_built,
    run_cli,
)


@dataclasses.dataclass
class TrainConfig(RunConfig):
    lr: float = arg(1e-3, "learning rate")
    widths: tuple[int, ...] = arg((64, 32), "hidden widths")
    model: Literal["mlp", "cnn"] = arg("mlp", "which model")
    tag: str | None = arg(None, "optional tag")


def parse(argv):
    parser = build_parser("p", "d", {"train": Command(TrainConfig, lambda c: c, "train")})
    return from_namespace(TrainConfig, parser.parse_args(["train", *argv]))


def test_defaults_round_trip():
    assert parse([]) == TrainConfig()


def test_flags_are_typed():
    cfg = parse(
        [
            "--lr",
            "0.5",
            "--widths",
            "8",
            "4",
            "2",
            "--model",
            "cnn",
            "--compile",
            "--device",
            "cpu",
            "--out",
            "x/y",
            "--resume",
            "latest",
            "--precision",
            "bf16",
        ]
    )
    assert cfg.lr == 0.5 and cfg.widths == (8, 4, 2) and cfg.model == "cnn"
    assert cfg.compile is True and cfg.device == "cpu" and cfg.out == Path("x/y")
    assert cfg.resume == "latest" and cfg.precision == "bf16"


def test_bad_choice_exits_2(capsys):
    with pytest.raises(SystemExit) as exc:
        parse(["--model", "rnn"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_not_built_says_so_and_exits_2(capsys):
    code = run_cli(
        "proj",
        "d",
        {"evaluate": Command(None, not_built("proj", "evaluate", 9), "e")},
        ["evaluate"],
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "not built yet" in err and "#9" in err


def test_user_error_is_one_line_exit_2(capsys):
    def boom(cfg):
        raise UserError("the file x.csv does not exist")

    code = run_cli("proj", "d", {"train": Command(TrainConfig, boom, "t")}, ["train"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip() == "proj: error: the file x.csv does not exist"
