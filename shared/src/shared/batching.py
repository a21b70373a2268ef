"""Epoch-permuted batches of rows, a pure function of (seed, step).

Each epoch visits the rows in a fresh order drawn from a generator seeded by (seed, epoch); step
``s`` takes batch ``s % steps_per_epoch`` of epoch ``s // steps_per_epoch`` (the ragged tail of an
epoch is dropped). No state but the cached permutation: a resumed run sees exactly the batches the
uninterrupted one would have.
"""

from __future__ import annotations

import torch

from shared.device import make_generator


class EpochBatches:
    """Step -> the row indices of that step's batch, on ``device``."""

    def __init__(self, n_rows: int, batch_size: int, seed: int, device=None) -> None:
        if n_rows < 1 or batch_size < 1:
            raise ValueError("EpochBatches needs at least one row and a positive batch size")
        self.n_rows, self.batch_size, self.seed = n_rows, min(batch_size, n_rows), seed
        self.device = device
        self.steps_per_epoch = max(1, n_rows // self.batch_size)
        self._epoch, self._perm = -1, torch.empty(0, dtype=torch.long)

    def indices(self, step: int) -> torch.Tensor:
        epoch, i = divmod(step, self.steps_per_epoch)
        if epoch != self._epoch:
            perm = torch.randperm(self.n_rows, generator=make_generator(self.seed, epoch))
            self._perm = perm.to(self.device) if self.device is not None else perm
            self._epoch = epoch
        return self._perm[i * self.batch_size : (i + 1) * self.batch_size]
