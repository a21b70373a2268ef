"""Hostile input reaching `shared`: numbers a user types, crafted checkpoints and model settings."""

import argparse
import resource

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from shared.checkpoint import (
    check_settings_bounds,
    load_checkpoint,
    model_from_checkpoint,
    refuse_if_damaged,
)
from shared.cli import SEED_RANGE, checked_number, number_parser
from shared.errors import UserError
from shared.runs import save_checkpoint


@pytest.mark.parametrize("text", ["nan", "NaN", "inf", "-inf", "1e400", "x", ""])
def test_float_flags_refuse_what_is_not_a_finite_number(text):
    with pytest.raises(argparse.ArgumentTypeError):
        number_parser(float)(text)


@pytest.mark.parametrize("text", ["99999999999999999999999", "-99999999999999999999999", "1.5"])
def test_int_flags_refuse_what_does_not_fit_64_bits(text):
    with pytest.raises(argparse.ArgumentTypeError):
        number_parser(int)(text)


def test_bounds_and_seeds():
    seed = number_parser(int, **SEED_RANGE)
    assert seed("0") == 0 and seed(str(2**32 - 1)) == 2**32 - 1
    for bad in ("-1", str(2**32)):
        with pytest.raises(argparse.ArgumentTypeError, match="outside 0..4294967295"):
            seed(bad)
    minutes = number_parser(float, above=0)
    assert minutes("0.5") == 0.5
    for bad in ("0", "-1"):
        with pytest.raises(argparse.ArgumentTypeError, match="greater than 0"):
            minutes(bad)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 2**70, "abc", None, [1], True, 1.5])
def test_demo_fields_follow_the_flag_rules(value):
    with pytest.raises(UserError, match="seed"):
        checked_number(value, "seed", int, **SEED_RANGE)


def test_demo_fields_accept_good_values():
    assert checked_number("3", "k", int, low=1) == 3
    assert checked_number(0.8, "temperature", float, low=0) == 0.8
    assert checked_number(4.0, "k", int) == 4


class Wide(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.layer = nn.Linear(width, width)


def test_crafted_sizes_are_refused_before_memory_is_spent(tmp_path):
    """A checkpoint claiming a 200,000-wide layer (160 GB in fp32) is refused by the shape check
    on the meta device; the process does not grow."""
    weights = Wide(4).state_dict()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(UserError, match="do not fit"):
        model_from_checkpoint(lambda: Wide(200_000), weights, tmp_path / "c.pt")
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 100, grown_mb
    model = model_from_checkpoint(lambda: Wide(4), weights, tmp_path / "c.pt")
    assert torch.equal(model.layer.weight, weights["layer.weight"])


@pytest.mark.parametrize(
    "weights, message",
    [
        ({"layer.weight": torch.zeros(4, 4)}, "1 missing"),
        ({**Wide(4).state_dict(), "extra": torch.zeros(1)}, "1 unexpected"),
        ({"layer.weight": torch.zeros(4, 5), "layer.bias": torch.zeros(4)}, "another shape"),
        ({"layer.weight": "not a tensor"}, "not a mapping of names to tensors"),
        ([1, 2, 3], "not a mapping of names to tensors"),
    ],
)
def test_weights_that_do_not_fit(tmp_path, weights, message):
    with pytest.raises(UserError, match=message):
        model_from_checkpoint(lambda: Wide(4), weights, tmp_path / "c.pt")


def test_bounds_of_settings(tmp_path):
    bounds = {"n_layer": (1, 64), "dropout": (0.0, 1.0)}
    check_settings_bounds(tmp_path, {"n_layer": 4, "dropout": 0.1}, bounds)
    for bad in ({"n_layer": 100000}, {"n_layer": 2.0}, {"n_layer": True}, {"dropout": "x"}):
        with pytest.raises(UserError, match="outside"):
            check_settings_bounds(tmp_path, {"n_layer": 4, "dropout": 0.1, **bad}, bounds)


def test_refuse_if_damaged_turns_damage_into_one_message(tmp_path):
    with pytest.raises(UserError, match="damaged checkpoint"), refuse_if_damaged(tmp_path / "c.pt"):
        {}["missing"]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.binary(max_size=4096))
def test_random_bytes_are_never_a_traceback(tmp_path, data):
    path = tmp_path / "random.pt"
    path.write_bytes(data)
    with pytest.raises(UserError):
        load_checkpoint(path, project="x")


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(cut=st.integers(min_value=0, max_value=10_000), flip=st.integers(min_value=0))
def test_truncated_or_flipped_checkpoints(tmp_path, cut, flip):
    """A real checkpoint cut short or with one byte flipped: readable or one message."""
    path = save_checkpoint(tmp_path / "c.pt", {"model": Wide(4).state_dict()}, project="x")
    data = bytearray(path.read_bytes())
    data[flip % len(data)] ^= 0xFF
    damaged = tmp_path / "d.pt"
    damaged.write_bytes(bytes(data[: max(1, len(data) - cut)]))
    try:
        state = load_checkpoint(damaged, project="x", required=("model",))
    except UserError:
        return
    try:
        with refuse_if_damaged(damaged):
            model_from_checkpoint(lambda: Wide(4), state["model"], damaged)
    except UserError:
        pass
