"""The checks of walkthrough.ipynb's "Try it yourself" exercises: open this file after you have
tried, since each check states the effect its exercise asks you to predict.

The notebook calls ``check`` on your answer (it prints "not yet" until the answer shows the
effect) and, in its Solutions, on the worked answer (which must pass) and on the same computation
with the effect removed (which must fail). Margins were measured on seeds 0, 1 and 2 of the
sample's 7,200 training digits; each is about half the smallest effect seen.
"""

from shared.lessons import Exercise, differs_by

# seeds 0, 1, 2: drops of 0.043, 0.054, 0.054 after two epochs
zero_grad = Exercise(
    1,
    "forget zero_grad()",
    differs_by(0.02, "validation accuracy", lower=True),
    "train two epochs from the same seed with train_model's clear_grads=False",
)
# seeds 0, 1, 2: drops of 0.194, 0.120, 0.151 after two epochs
learning_rate = Exercise(
    2,
    "a learning rate of 1",
    differs_by(0.06, "validation accuracy", lower=True),
    "train_model takes lr; two epochs, seed 0",
)
# seeds 0, 1, 2: drops of 0.063, 0.077, 0.061 after five epochs (720 digits against 7,200)
less_data = Exercise(
    3,
    "a tenth of the digits",
    differs_by(0.03, "validation accuracy", lower=True),
    "train_model takes data=(images, labels); slice every tenth with [::10]",
)
