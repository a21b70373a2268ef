"""The checks of walkthrough.ipynb's "Try it yourself" exercises: open this file after you have
tried, since each check states the effect its exercise asks you to predict.

The notebook calls ``check`` on your answer (it prints "not yet" until the answer shows the
effect) and, in its Solutions, on the worked answer (which must pass) and on the same computation
with the effect removed (which must fail).
"""

import math

from shared.lessons import Exercise, differs_by


def warm_cannot_be_sure(answer) -> str | None:
    """The effect: perfect embeddings of 16 pairs still score more than 1 nat at tau 1 (the floor
    is ln(1 + 15 / e) = 1.875), and less than 0.01 at tau 0.1 (ln(1 + 15 e^-10) = 0.0007)."""
    warm, cold = (float(x) for x in answer)
    if warm > 1.0 and cold < 0.01:
        return None
    return f"InfoNCE {warm:.4f} at tau 1 and {cold:.4f} at tau 0.1"


def knowing_nothing(answer) -> str | None:
    """The effect, for every batch size B: within 0.1 of ln B at tau 1, and more than 0.5 above it
    at tau 0.07 (answer: {B: (loss at tau 1, loss at tau 0.07)})."""
    for b, (warm, cold) in answer.items():
        if abs(warm - math.log(b)) >= 0.1 or cold <= math.log(b) + 0.5:
            return (
                f"B = {b}: {warm:.3f} at tau 1 and {cold:.3f} at tau 0.07, ln B = {math.log(b):.3f}"
            )
    return None


temperature = Exercise(
    1,
    "a warm temperature",
    warm_cannot_be_sure,
    "info_nce(perfect, perfect, torch.tensor(math.log(1 / tau))) for tau 1 and 0.1",
)
# more than 0.5 nats above the matched captions' loss (seen: 1.84 against 15.8)
wrong_captions = Exercise(
    2, "the wrong captions", differs_by(0.5, "InfoNCE", lower=False), "validation_loss(shuffled)"
)
random_vectors = Exercise(
    3,
    "ln B, the loss of knowing nothing",
    knowing_nothing,
    "F.normalize(torch.randn(b, 64), dim=-1) for each side; logit_scale ln(1 / tau)",
)
