"""The checks of walkthrough.ipynb's "Try it yourself" exercises: open this file after you have
tried, since each check states the effect its exercise asks you to predict.

The notebook calls ``check`` on your answer (it prints "not yet" until the answer shows the
effect) and, in its Solutions, on the worked answer (which must pass) and on the same computation
with the effect removed (which must fail): two samples at the same temperature, the model's own
context, a second sample instead of the greedy one.
"""

from shared.lessons import Exercise, differs_by


def distinct_pieces(text: str, n: int = 8) -> int:
    """How many different n-character pieces ``text`` holds (a text that loops holds few)."""
    return len({text[i : i + n] for i in range(len(text) - n + 1)})


def more_characters_when_hot(answer) -> str | None:
    """The effect: the hot sample uses more than 1.5 times the cold one's distinct characters
    (seen: 21 at temperature 0.1 against 62 at 2 on the two sample novels; a second sample at
    the same temperature stays within a few characters of the first)."""
    cold, hot = (len(set(text)) for text in answer)
    if hot > 1.5 * cold:
        return None
    return f"{cold} distinct characters in the first sample, {hot} in the second"


def greedy_loops(answer, *, sampled: str) -> str | None:
    """The effect: fewer than half the distinct 8-character pieces of a sample at temperature 1
    (seen: 15 against nearly all of the 393 a text of 400 characters can hold)."""
    mine, theirs = distinct_pieces(answer), distinct_pieces(sampled)
    if mine < theirs / 2:
        return None
    return f"{mine} distinct 8-character pieces against the sample's {theirs}"


temperature = Exercise(
    1,
    "temperature 0.1 against 2",
    more_characters_when_hot,
    "sample_text(temperature, length=400) for each; answer = (the cold one, the hot one)",
)
# more than 0.1 bits/char worse than with the model's own context (seen: 0.41)
context = Exercise(
    2,
    "a context of 8 characters",
    differs_by(0.1, "bits/char", lower=False),
    "evaluate(model, context=8)",
)
greedy = Exercise(
    3,
    "always the likeliest character",
    greedy_loops,
    "sample_text(top_k=1, length=400) keeps only the likeliest character at every step",
)
