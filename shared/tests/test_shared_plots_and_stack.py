import numpy as np
import torch

from shared.plots import (
    LivePlot,
    confusion_matrix_figure,
    image_grid,
    label_colors,
    spectrogram_grid,
    true_pred_titles,
)

PNG = b"\x89PNG"


def test_figures_are_pngs(tmp_path):
    true, pred = [0, 1, 2, 1], [0, 2, 2, 1]
    titles = true_pred_titles(true, pred, ["a", "b", "c"])
    colors = label_colors(true, pred)
    assert colors[1] != colors[0]
    paths = [
        image_grid(np.random.rand(4, 28, 28), tmp_path / "g.png", titles=titles, colors=colors),
        spectrogram_grid(np.random.rand(4, 64, 100), tmp_path / "s.png", titles=titles),
        confusion_matrix_figure(np.array([[5, 1], [2, 7]]), ["x", "y"], tmp_path / "cm.png"),
    ]
    for p in paths:
        assert p.read_bytes()[:4] == PNG


def test_live_plot_rewrites_every_n_but_not_too_often(tmp_path):
    plot = LivePlot(tmp_path / "live.png", redraw_every=2, min_seconds=3600)
    plot.update(1, train_loss=1.0)
    assert not plot.path.exists()
    plot.update(2, train_loss=0.8, val_loss=0.9, val_acc=0.5)
    assert plot.path.read_bytes()[:4] == PNG
    first = plot.path.stat().st_mtime_ns
    plot.update(3, train_loss=0.7)
    plot.update(4, train_loss=0.6)  # due by count, but drawn less than an hour ago
    assert plot.path.stat().st_mtime_ns == first
    plot.draw()  # the end of training always draws
    assert plot.path.stat().st_mtime_ns >= first and len(plot.series["train_loss"][0]) == 4


def test_live_plot_keeps_the_metrics_asked_for(tmp_path):
    plot = LivePlot(tmp_path / "live.png", metrics=("loss", "t2v_r1"))
    plot.update(1, train_loss=1.0, val_loss=0.9, val_t2v_r1=5.0, val_t2v_r5=9.0, lr=0.1)
    assert sorted(plot.series) == ["train_loss", "val_loss", "val_t2v_r1"]


def test_torch_trio_works_together():
    import torchaudio
    import torchvision

    assert torch.__version__.startswith("2.11")
    assert torchaudio.__version__.startswith("2.11")
    assert torchvision.__version__.startswith("0.26")
    mel = torchaudio.transforms.MelSpectrogram(
        sample_rate=22050, n_fft=1024, hop_length=512, n_mels=64
    )
    spec = mel(torch.randn(1, 22050))
    assert spec.shape == (1, 64, 44) and torch.isfinite(spec).all()


def test_a_confusion_matrix_of_500_labels_stays_small(tmp_path):
    """500 labels: the 30 most confused are drawn; the figure stays a few megapixels."""
    from PIL import Image

    from shared.plots import MAX_MATRIX_LABELS, most_confused

    cm = np.diag(np.full(500, 3))
    cm[7, 7], cm[7, 42] = 0, 3  # label 7 always taken for 42
    cm[100, 100], cm[100, 3] = 1, 2
    keep = most_confused(cm, MAX_MATRIX_LABELS)
    assert len(keep) == MAX_MATRIX_LABELS and {3, 7, 42, 100} <= set(keep.tolist())
    path = confusion_matrix_figure(cm, [f"label{i}" for i in range(500)], tmp_path / "cm.png")
    with Image.open(path) as image:
        assert image.width * image.height < 5_000_000, image.size
