"""Window and clip accuracy, macro-F1, the confusion matrix and the labelled spectrogram grid;
and ``audio-net evaluate``: a checkpoint scored once on its held-out clips, beside the baseline."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import confusion_matrix, f1_score

from audio_net.baseline import baseline_report
from audio_net.config import EvaluateConfig
from audio_net.dataset import find_gtzan, labels_of
from audio_net.features import Features, load_features
from audio_net.inference import PROJECT, load_classifier
from audio_net.model import clip_logits, window_logits
from shared.device import autocast, resolve_precision, select_device
from shared.errors import UserError
from shared.plots import confusion_matrix_figure, label_colors, spectrogram_grid, true_pred_titles
from shared.runs import Run


def report(
    model, feats: Features, names: list[str], run: Run, device, autocast, *, title: str
) -> dict:
    """Metrics on the clips ``names`` plus the confusion-matrix and spectrogram-grid figures."""
    x, y, clip_ids = feats.select(set(names))
    if len(y) == 0:
        raise ValueError("report needs at least one clip")
    x, y, clip_ids = x.to(device), y.to(device), clip_ids.to(device)
    with autocast():
        logits = window_logits(model, model.normalise, x)
    ids, per_clip = clip_logits(logits, clip_ids)
    clip_true = feats.labels.to(device)[ids]
    clip_pred = per_clip.argmax(1)
    yt, yp = clip_true.cpu().numpy(), clip_pred.cpu().numpy()
    confusion_matrix_figure(
        confusion_matrix(yt, yp, labels=range(len(feats.label_names))),
        feats.label_names,
        run.figure("confusion_matrix.png"),
        title=f"{title}: clip predictions",
    )
    # the original's figure, done right: held-out windows with true and predicted labels
    pick = np.linspace(0, len(y) - 1, num=min(16, len(y))).astype(int)
    wp = logits.argmax(1).cpu().numpy()
    wt = y.cpu().numpy()
    spectrogram_grid(
        x[pick].float().cpu().numpy(),
        run.figure("spectrograms.png"),
        titles=true_pred_titles(wt[pick], wp[pick], feats.label_names),
        colors=label_colors(wt[pick], wp[pick]),
        suptitle=f"{title}: log-mel windows",
        colorbar="dB",
    )
    return {
        "clips": len(ids),
        "windows": len(y),
        "window_accuracy": round(float((logits.argmax(1) == y).float().mean()), 4),
        "clip_accuracy": round(float((clip_pred == clip_true).float().mean()), 4),
        # over the genres present among these clips (an absent genre would count as F1 0)
        "macro_f1": round(
            float(f1_score(yt, yp, average="macro", labels=sorted(set(yt)), zero_division=0)), 4
        ),
    }


def evaluate_command(cfg: EvaluateConfig) -> int:
    """``audio-net evaluate``: the checkpoint's ``--split`` clips (test by default), found under
    the data folder it was trained on, scored once; the baseline beside it on the same clips."""
    device = select_device(cfg.device)
    model, params, labels, state = load_classifier(cfg.checkpoint, device)
    clips = find_gtzan(cfg.data_dir, download=cfg.download, quiet=cfg.quiet)
    if labels_of(clips) != list(labels):
        raise UserError(
            f"the data folder's labels ({', '.join(labels_of(clips))}) are not the checkpoint's "
            f"({', '.join(labels)}): point --data-dir at the data the model was trained on"
        )
    feats, _ = load_features(clips, params, cfg.cache_dir, device, quiet=cfg.quiet)
    names = [n for n in state["split"][cfg.split] if n in set(feats.names)]
    if not names:
        cv_final = (
            " (a --cv final model has no held-out clips)" if not state["split"][cfg.split] else ""
        )
        raise UserError(
            f"none of the checkpoint's {cfg.split} clips were found under the data folder{cv_final}"
        )
    run = Run(PROJECT, cfg.out, cfg)
    precision = resolve_precision(cfg.precision, device)
    scores = report(
        model,
        feats,
        names,
        run,
        device,
        lambda: autocast(device, precision),
        title=f"{cfg.split} clips",
    )
    baseline = baseline_report(
        feats, state["split"]["train"], names, run.figure("baseline_confusion_matrix.png")
    )
    run.finish(
        {
            "checkpoint": str(cfg.checkpoint),
            "split": cfg.split,
            **scores,
            "baseline_clip_accuracy": baseline["clip_accuracy"],
            "baseline_macro_f1": baseline["macro_f1"],
        }
    )
    return 0
