import dataclasses
from pathlib import Path
from typing import Literal

import pytest

from shared.cli import (
    Command,
    RunConfig,
    arg,
    build_parser,
    check_bounds,
    checked_as,
    epochs_flag,
    from_namespace,
    run_cli,
)
from shared.errors import Terminated, UserError
from shared.files import to_jsonable


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
    assert cfg.compile == "on" and cfg.device == "cpu" and cfg.out == Path("x/y")
    assert cfg.resume == "latest" and cfg.precision == "bf16"


def test_bad_choice_exits_2(capsys):
    with pytest.raises(SystemExit) as exc:
        parse(["--model", "rnn"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


@dataclasses.dataclass
class EvalConfig:
    checkpoint: Path | None = arg(None, "checkpoint", required=True)


def test_required_flag_is_refused_by_argparse(capsys):
    commands = {"evaluate": Command(EvalConfig, lambda c: 0, "e")}
    with pytest.raises(SystemExit) as exc:
        run_cli("proj", "d", commands, ["evaluate"])
    assert exc.value.code == 2 and "--checkpoint" in capsys.readouterr().err
    assert run_cli("proj", "d", commands, ["evaluate", "--checkpoint", "c.pt"]) == 0


def test_os_errors_terminate_and_interrupt_are_one_line(capsys, tmp_path):
    def disk_full(cfg):
        raise OSError(28, "No space left on device", str(tmp_path / "x.pt"))

    def terminated(cfg):
        raise Terminated("saved last.pt at step 7")

    def interrupted(cfg):
        raise KeyboardInterrupt

    for run, code, line in [
        (disk_full, 2, f"proj: error: {tmp_path / 'x.pt'}: no space left on device"),
        (terminated, 143, "proj: stopped by SIGTERM: saved last.pt at step 7"),
        (interrupted, 130, "proj: interrupted"),
    ]:
        assert run_cli("proj", "d", {"train": Command(TrainConfig, run, "t")}, ["train"]) == code
        assert capsys.readouterr().err.strip() == line


def test_unwritable_out_is_refused_before_the_command_runs(capsys, tmp_path):
    ran = []
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    commands = {"train": Command(TrainConfig, ran.append, "t")}
    for out, message in [
        (a_file, "is a file, not a folder"),
        (a_file / "sub", "is a file, not a folder"),
        (Path("/proc/no-such-run"), "cannot write in /proc"),  # a read-only file system
    ]:
        assert run_cli("proj", "d", commands, ["train", "--out", str(out)]) == 2
        assert message in capsys.readouterr().err
    assert ran == [] and not (tmp_path / "sub").exists()


def test_non_finite_floats_become_null():
    assert to_jsonable({"a": float("nan"), "b": [float("inf"), 1.5]}) == {
        "a": None,
        "b": [None, 1.5],
    }


def test_user_error_is_one_line_exit_2(capsys):
    def boom(cfg):
        raise UserError("the file x.csv does not exist")

    code = run_cli("proj", "d", {"train": Command(TrainConfig, boom, "t")}, ["train"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip() == "proj: error: the file x.csv does not exist"


@dataclasses.dataclass
class PredictConfig:
    run: Path | None = arg(None, "run folder", aliases=("--model",), group="input")


def test_alias_is_accepted_but_not_advertised(capsys):
    parser = build_parser("p", "d", {"predict": Command(PredictConfig, lambda c: c, "p")})
    cfg = from_namespace(PredictConfig, parser.parse_args(["predict", "--model", "r1"]))
    assert cfg.run == Path("r1")
    assert from_namespace(PredictConfig, parser.parse_args(["predict"])).run is None
    with pytest.raises(SystemExit):
        parser.parse_args(["predict", "--help"])
    out = capsys.readouterr().out
    assert "--run" in out and "--model" not in out and "input:" in out


@dataclasses.dataclass
class PresetConfig(RunConfig):
    preset: Literal["none", "small"] = arg("none", "preset")
    width: int = arg(64, "width (32 with --preset small)")
    epochs: int | None = arg(None, "epochs (default: 10 for the MLP, 5 for the CNN)")
    model: Literal["mlp", "cnn"] = arg("mlp", "which model")

    def settle(self):  # what a project's train calls first
        if self.preset == "small" and "width" not in self.typed:
            self.width = 32
        if "epochs" not in self.typed:
            self.epochs = 10 if self.model == "mlp" else 5
        return self


@dataclasses.dataclass
class TableConfig(RunConfig):
    """The same rules as PresetConfig's, declared in ``arg`` instead of written in ``settle``."""

    preset: Literal["none", "small", "broken"] = arg(
        "none", "preset", sets={"small": {"width": 32}, "broken": {"width": 4}}
    )
    width: int = arg(64, "width (32 with --preset small)", low=8)
    epochs: int | None = arg(None, "epochs (default: 10 for the MLP, 5 for the CNN)")
    model: Literal["mlp", "cnn"] = arg(
        "mlp", "which model", sets={"mlp": {"epochs": 10}, "cnn": {"epochs": 5}}
    )
    weights: Path | None = arg(None, "CNN weights", needs={"model": "cnn"})
    channels: tuple[int, ...] = arg((8, 8, 8), "three conv widths", items=(3, 3), low=1)
    hidden: tuple[int, ...] = arg((16,), "hidden widths", items=(1, None))


def parser_of(cls):
    parser = build_parser("p", "d", {"t": Command(cls, lambda c: c, "t")})
    return lambda *argv: settled(from_namespace(cls, parser.parse_args(["t", *argv])))


def settled(cfg):
    """``cfg`` as a project's train sees it: after its ``settle()``, where it has one."""
    return cfg.settle() if hasattr(cfg, "settle") else cfg


@pytest.mark.parametrize("cls", [PresetConfig, TableConfig])  # settle() or arg(sets=...)
def test_a_default_that_depends_on_another_flag_yields_to_a_typed_flag_even_at_its_value(cls):
    parse = parser_of(cls)
    assert parse("--preset", "small").width == 32
    assert parse("--preset", "small", "--width", "64").width == 64  # typed at the default: kept
    assert parse().width == 64 and parse("--model", "cnn").epochs == 5
    assert parse().epochs == 10 and parse("--model", "cnn", "--epochs", "10").epochs == 10
    assert settled(cls(preset="small")).width == 32  # built in code: a default counts as unset
    assert settled(cls(preset="small", width=48)).width == 48
    assert settled(cls(model="cnn")).epochs == 5


def test_rules_declared_in_arg_hold_for_flags_and_for_code():
    parse = parser_of(TableConfig)
    assert parse("--model", "cnn", "--weights", "w.pt").weights == Path("w.pt")
    with pytest.raises(UserError, match="--weights is for --model cnn: add --model cnn"):
        parse("--weights", "w.pt")
    with pytest.raises(UserError, match="--weights is for --model cnn"):
        TableConfig(weights=Path("w.pt"))  # built in code: the same rule
    with pytest.raises(UserError, match=r"--channels takes 3 values \(2 given\)"):
        parse("--channels", "4", "4")
    with pytest.raises(UserError, match=r"--hidden takes at least 1 value \(0 given\)"):
        TableConfig(hidden=())
    with pytest.raises(UserError, match="--channels is outside 1"):
        TableConfig(channels=(4, 0, 4))
    with pytest.raises(UserError, match="--width is outside 8"):  # a preset's value is checked too
        parse("--preset", "broken")


def test_a_run_config_checks_its_bounds_after_settling():
    @dataclasses.dataclass
    class Widths(RunConfig):
        widths: tuple[int, ...] = arg((64, 32), "hidden widths", low=1)
        batch: int = arg(8, "batch", low=2)

        def settle(self):
            if "batch" not in self.typed and self.widths == (1,):
                self.batch = 1  # a default below the bound: refused, as a typed one would be
            check_bounds(self)
            return self

    assert Widths(widths=(3, 2)).settle().widths == (3, 2)
    with pytest.raises(UserError, match=r"--widths is outside 1\.\. \(0\)"):
        Widths(widths=(3, 0))  # each of a list's items, when the config is built
    with pytest.raises(UserError, match="--batch is outside 2"):
        Widths(widths=(1,)).settle()


def test_bounds_declared_once_hold_for_a_config_built_in_code():
    @dataclasses.dataclass
    class Steps:
        steps: int = arg(10, "steps", low=1)
        lr: float = arg(0.1, "learning rate", above=0)
        note: str = arg("x", "not a number: never checked")

    check_bounds(Steps())
    with pytest.raises(UserError, match=r"--steps is outside 1\.\. \(0\)"):
        check_bounds(Steps(steps=0))
    with pytest.raises(UserError, match="--lr must be greater than 0"):
        check_bounds(Steps(lr=0.0))


def test_an_off_value_and_a_bound_by_another_flag():
    @dataclasses.dataclass
    class Folds(RunConfig):
        epochs: int | str = arg("auto", "epochs", parse=epochs_flag)
        folds: int = arg(0, "K folds, or 0: none", low=2, off=0)
        frozen: int = arg(0, "head-only epochs", low=0, below="epochs")

    parser = build_parser("p", "d", {"train": Command(Folds, lambda c: c, "train")})
    assert from_namespace(Folds, parser.parse_args(["train", "--folds", "0"])).folds == 0
    assert Folds(folds=3, epochs=5, frozen=4).frozen == 4
    assert Folds(frozen=40).frozen == 40  # --epochs auto: nothing to compare with
    with pytest.raises(SystemExit):  # argparse's error (exit 2), before any work
        parser.parse_args(["train", "--folds", "1"])
    with pytest.raises(UserError, match=r"--folds is outside 2\.\. \(or 0: off\) \(1\)"):
        Folds(folds=1)  # a config built in code keeps the same rule
    with pytest.raises(UserError, match=r"--frozen must be below --epochs \(5 >= 5\)"):
        Folds(epochs=5, frozen=5)


def test_a_page_input_is_checked_by_its_flags_declared_bounds():
    @dataclasses.dataclass
    class Sampling:
        temperature: float = arg(0.8, "temperature", low=0, high=100)
        top_p: float | None = arg(None, "top-p", above=0, high=1)

    assert checked_as(Sampling, "temperature", "2.5", "temperature") == 2.5
    assert checked_as(Sampling, "top_p", 1, "top-p") == 1.0  # an Optional field: its number type
    with pytest.raises(UserError, match=r"temperature is outside 0\.\.100 \(101\)"):
        checked_as(Sampling, "temperature", 101, "temperature")
    with pytest.raises(UserError, match="top-p must be greater than 0"):
        checked_as(Sampling, "top_p", 0.0, "top-p")
