"""The checks of walkthrough.ipynb's "Try it yourself" exercises: open this file after you have
tried, since each check states the effect its exercise asks you to predict.

The notebook calls ``check`` on your answer (it prints "not yet" until the answer shows the
effect) and, in its Solutions, on the worked answer (which must pass) and on the same computation
with the effect removed (which must fail).
"""

from shared.lessons import Exercise, differs_by


def heard_an_octave_up(answer, *, right: float) -> str | None:
    """The effect: filters built for twice the real rate hear a 440 Hz tone near 880 Hz."""
    if abs(right / 440 - 1) > 0.1:
        return f"the right filters should hear the tone near 440 Hz, not {right:.0f} Hz"
    if abs(float(answer) / 880 - 1) < 0.1:
        return None
    return f"the tone is heard at {float(answer):.0f} Hz"


def blurred_then_resolved(answer) -> str | None:
    """The effect: one peak between 300 and 650 Hz at n_fft 256, two at n_fft 4096."""
    coarse, fine = answer
    if (coarse, fine) == (1, 2):
        return None
    return f"{coarse} peak(s) at n_fft 256 and {fine} at 4096"


# nine epochs each way, the last epoch's weights, on the five-clips-per-genre sample: the network
# without augmentation fit the clean training windows 0.43 (seed 0) and 0.46 (seed 1) nats more
# closely; the margin is under half of that
MARGIN = 0.2
no_augmentation = Exercise(
    1,
    "no augmentation",
    differs_by(MARGIN, "a clean training loss", lower=True),
    "train_model(new_model(), epochs=9, augmentation=AugmentConfig(**off), keep_best=False)",
)
sample_rate = Exercise(
    2,
    "the wrong sample rate",
    heard_an_octave_up,
    "LogMel(FeatureParams(sample_rate=...)) builds the filters; heard_at(filters, tone)",
)
semitone = Exercise(
    3,
    "two notes a semitone apart",
    blurred_then_resolved,
    "peaks_between(two_notes, n_fft) for n_fft 256 and 4096; answer = (the first, the second)",
)
