"""The classical baseline every network result is reported beside.

Per clip: the mean and spread over time of 40 MFCCs and of the 128 log-mel bands (MFCCs are the
DCT of the same log-mel frames the network sees), standardised, then logistic regression. It is
fitted on exactly the training clips of the network's split (or fold) and scored on the same
held-out clips, so the two numbers compare like for like.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
import torchaudio.functional as AF
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import confusion_matrix, f1_score
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from audio_net.features import Features
from shared.plots import confusion_matrix_figure

N_MFCC = 40


def clip_features(feats: Features) -> np.ndarray:
    """(clips, 2 * (40 + n_mels)) statistics, in ``feats.names`` order."""
    n_mels = feats.windows.shape[1]
    dct = AF.create_dct(N_MFCC, n_mels, "ortho")  # (n_mels, 40)
    rows = []
    for clip in range(len(feats.names)):
        frames = feats.windows[feats.clip_of_window == clip].float().transpose(1, 2)
        frames = frames.reshape(-1, n_mels)  # every frame of every window of the clip
        mfcc = frames @ dct
        rows.append(torch.cat([mfcc.mean(0), mfcc.std(0), frames.mean(0), frames.std(0)]))
    return torch.stack(rows).numpy()


def fit_baseline(x: np.ndarray, y: np.ndarray) -> Pipeline:
    model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=5000))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(x, y)


def baseline_report(
    feats: Features, train: list[str], test: list[str], figure=None, *, title: str = "baseline"
) -> dict:
    """Fit on the clips ``train``, score on ``test``: accuracy, macro-F1 (and the confusion
    matrix figure at ``figure`` when given)."""
    index = {n: i for i, n in enumerate(feats.names)}
    x = clip_features(feats)
    y = feats.labels.numpy()
    tr = [index[n] for n in train if n in index]
    te = [index[n] for n in test if n in index]
    model = fit_baseline(x[tr], y[tr])
    pred = model.predict(x[te])
    if figure is not None:
        confusion_matrix_figure(
            confusion_matrix(y[te], pred, labels=range(len(feats.label_names))),
            feats.label_names,
            figure,
            title=f"{title}: MFCC + log-mel statistics, logistic regression",
        )
    return {
        "clip_accuracy": round(float((pred == y[te]).mean()), 4),
        "macro_f1": round(
            float(
                f1_score(y[te], pred, average="macro", labels=sorted(set(y[te])), zero_division=0)
            ),
            4,
        ),
    }
