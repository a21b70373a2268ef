"""A module to ONNX through ``torch.onnx.export`` (dynamo), with a dynamic batch axis, written
atomically. Needs ``onnx`` and ``onnxscript`` (a project's ``export`` extra)."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from shared.files import atomic_path


def export_onnx(
    module: torch.nn.Module,
    example: torch.Tensor,
    path: Path,
    input_name: str,
    output_names: list[str],
) -> Path:
    """``module(example)`` as ONNX at ``path``; the first axis of the input is dynamic."""
    batch = torch.export.Dim("batch", min=1, max=1 << 20)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.export's own deprecation notes
        warnings.simplefilter("ignore", DeprecationWarning)
        program = torch.onnx.export(
            module.eval(),
            (example,),
            dynamo=True,
            input_names=[input_name],
            output_names=output_names,
            dynamic_shapes=({0: batch},),
            verbose=False,
        )
        program.save(str(tmp))
    return path
