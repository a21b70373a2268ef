import io
import random

import numpy as np
import pytest
import torch

from shared.device import make_generator, rng_state, seed_everything, select_device, set_rng_state
from shared.errors import UserError


def draw():
    return random.random(), float(np.random.rand()), torch.rand(3).tolist()


def test_seeding_is_deterministic():
    seed_everything(123)
    a = draw()
    seed_everything(123)
    assert draw() == a
    seed_everything(124)
    assert draw() != a


def test_rng_state_round_trips_through_weights_only_load():
    seed_everything(7)
    buf = io.BytesIO()
    torch.save({"rng": rng_state()}, buf)
    expected = draw()
    draw()  # move every generator on
    buf.seek(0)
    set_rng_state(torch.load(buf, weights_only=True)["rng"])
    assert draw() == expected


def test_generator_is_a_function_of_seed_and_offsets():
    a = torch.randperm(100, generator=make_generator(1, 3))
    assert torch.equal(a, torch.randperm(100, generator=make_generator(1, 3)))
    assert not torch.equal(a, torch.randperm(100, generator=make_generator(1, 4)))


def test_device_choice():
    assert select_device("cpu").type == "cpu"
    # auto picks the GPU exactly when torch sees one
    assert (select_device("auto").type == "cuda") == torch.cuda.is_available()
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="no CUDA"):
            select_device("cuda")


def test_no_cuda_runtime_warning_reaches_a_cpu_user():
    """torch.utils.cpp_extension, imported by every CPU compile, warned "No CUDA runtime is
    found, using CUDA_HOME=..." into the user's terminal; shared.device silences that logger."""
    import subprocess
    import sys

    code = "import shared.device, torch.utils.cpp_extension"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and "No CUDA runtime" not in out.stderr, out.stderr
