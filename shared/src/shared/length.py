"""How long to train when the data set's size is the user's: ``--epochs auto`` and ``--patience``.

A fixed number of epochs gives a fixed number of passes, but the optimizer steps it gives shrink
with the data: 10 epochs of 240 one-second clips are 40 steps, far too few to learn anything. So
``auto`` sets a step budget (at least ``min_steps`` steps and at least ``min_epochs`` epochs) and
stops early once the validation score has not improved for a while (``--patience``; at least
``patience_epochs`` epochs and ``patience_steps`` steps by default), validating at least
``min_steps_between_evals`` steps apart. An explicit ``--epochs N`` trains N epochs, validating
after each, without early stopping unless ``--patience`` asks for it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from shared.config import AUTO
from shared.progress import info
from shared.training import Cadence


@dataclass(frozen=True)
class AutoLength:
    """A project's rule for ``--epochs auto`` (see the module docstring)."""

    min_epochs: int
    min_steps: int
    patience_epochs: int
    patience_steps: int
    min_steps_between_evals: int = 20  # a small data set's epochs are a step or two

    def min_eval_steps(self, setting: int | str) -> int:
        """Steps between validations at least: ``auto`` spaces them (hundreds of one-step epochs
        would validate after every step); ``--epochs N`` validates after every epoch."""
        return self.min_steps_between_evals if setting == AUTO else 1

    def epochs(self, setting: int | str, steps_per_epoch: int) -> int:
        if setting != AUTO:
            return int(setting)
        return max(self.min_epochs, math.ceil(self.min_steps / max(steps_per_epoch, 1)))

    def patience(self, setting: int | None, epochs: int | str, steps_per_epoch: int) -> int:
        """Epochs without a better validation score before stopping (0: never stop early)."""
        if setting is not None:
            return int(setting)
        if epochs != AUTO:
            return 0
        return max(self.patience_epochs, math.ceil(self.patience_steps / max(steps_per_epoch, 1)))

    def describe(self, epochs: int, patience: int, steps_per_epoch: int) -> str:
        stop = f"; stops early after {patience} epochs without improvement" if patience else ""
        return (
            f"{epochs} epochs of {steps_per_epoch} steps ({epochs * steps_per_epoch} steps){stop}"
        )

    def cadence(
        self,
        setting: int | str,
        patience: int | None,
        steps_per_epoch: int,
        *,
        validates: bool,
        epochs: int | None = None,
        max_minutes: float | None = None,
        quiet: bool = False,
    ) -> tuple[int, Cadence]:
        """The whole step from the flags to the schedule: ``--epochs`` (``setting``; ``epochs``
        where the count was resolved elsewhere, as a cross-validation's final model's) and
        ``--patience`` for this data, said in one line; no early stopping when nothing
        ``validates``. Returns the epochs and the :meth:`Cadence.by_epoch` that runs them."""
        count = self.epochs(setting if epochs is None else epochs, steps_per_epoch)
        wait = self.patience(patience, setting, steps_per_epoch) if validates else 0
        info(f"training length: {self.describe(count, wait, steps_per_epoch)}", quiet)
        return count, Cadence.by_epoch(
            count,
            steps_per_epoch,
            max_minutes,
            patience=wait,
            min_eval_steps=self.min_eval_steps(setting),
        )
