"""`audio-net demo`: upload or record audio, see its label (genre, for GTZAN), its log-mel spectrogram and the
prediction of each window over time.

Any length up to ``--max-seconds``, any sample rate, mono or stereo: the clip goes through the
same path as `audio-net predict` (mono mix, resampling, log-mel windows, mean of the windows'
probabilities), so the page and the command agree to the last digit.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import soundfile as sf
import torch

from audio_net.audio import AudioError, read_audio
from audio_net.config import DemoConfig
from audio_net.dataset import GENRES
from audio_net.features import featurize_waves, frontend
from audio_net.inference import PROJECT, load_classifier
from audio_net.model import window_logits
from shared.cli import DemoOptions
from shared.demo import (
    discard_upload,
    find_run,
    import_gradio,
    model_card,
    prune_uploads,
    refuse,
    serve,
)
from shared.device import select_device
from shared.errors import UserError
from shared.files import cache_root


@dataclass
class Analysis:
    probabilities: dict[str, float]  # clip level: mean of the windows' probabilities
    windows: np.ndarray  # (n_windows, n_genres)
    window_starts: np.ndarray  # seconds
    spectrogram: np.ndarray  # (n_mels, frames), dB
    seconds: float


class GenreModel:
    def __init__(self, checkpoint: Path, device: torch.device, max_seconds: float) -> None:
        self.model, self.params, self.genres, _ = load_classifier(checkpoint, device)
        self.logmel = frontend(self.params).to(device)
        self.device = device
        self.max_seconds = max_seconds

    def check_length(self, path: Path) -> None:
        try:
            info = sf.info(str(path))
        except Exception:  # read_audio gives the readable reason
            return
        if info.duration > self.max_seconds:
            raise AudioError(
                f"the recording lasts {info.duration / 60:.1f} min; this demo takes up to "
                f"{self.max_seconds:g} s (trim it, or start the demo with --max-seconds)"
            )

    @torch.no_grad()
    def analyse(self, path: Path) -> Analysis:
        self.check_length(path)
        p = self.params
        wave = read_audio(path, p.sample_rate, p.min_seconds)
        windows = featurize_waves([wave], self.logmel, self.device)[0]
        probs = window_logits(self.model, self.model.normalise, windows).softmax(-1)
        spec = self.logmel(wave.to(self.device)[None])[0].cpu().numpy()
        return Analysis(
            {g: float(v) for g, v in zip(self.genres, probs.mean(0).cpu(), strict=True)},
            probs.cpu().numpy(),
            np.arange(len(windows)) * p.hop_frames * p.hop_length / p.sample_rate,
            spec,
            len(wave) / p.sample_rate,
        )


def spectrogram_figure(a: Analysis, hop_seconds: float):
    fig, ax = plt.subplots(figsize=(8, 3))
    ax.imshow(
        a.spectrogram,
        origin="lower",
        aspect="auto",
        cmap="magma",
        extent=(0, a.spectrogram.shape[1] * hop_seconds, 0, a.spectrogram.shape[0]),
    )
    ax.set(xlabel="seconds", ylabel="mel band", title="log-mel spectrogram the model saw (dB)")
    fig.tight_layout()
    return fig


def timeline_figure(a: Analysis, genres: list[str], window_seconds: float):
    fig, ax = plt.subplots(figsize=(8, 2.8))
    top = np.argsort(-a.windows.mean(0))[:4]
    centres = a.window_starts + window_seconds / 2
    for g in top:
        ax.plot(centres, a.windows[:, g], marker="o", markersize=3, label=genres[g])
    ax.set(xlabel="seconds (window centre)", ylabel="probability", ylim=(0, 1))
    ax.set_title("prediction of each window")
    ax.legend(fontsize=8, loc="upper right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def build_app(opts: DemoOptions, max_seconds: float):
    served = find_run(PROJECT, opts, train_command="audio-net train")
    gr = import_gradio(cache_root(PROJECT) / "demo-uploads")
    device = select_device(opts.device)
    try:
        model = GenreModel(served.checkpoint, device, max_seconds)
    except KeyError as exc:
        raise UserError(f"{served.checkpoint} is not an audio-net checkpoint") from exc
    p = model.params

    def classify(path):
        if not path or not isinstance(path, str):
            raise refuse(gr, "no audio: upload a file or record something first", opts.debug)
        try:
            a = model.analyse(Path(path))
        except AudioError as exc:  # named by the user's file name, never the server's path
            discard_upload(path)  # refused: gone at once, not kept until the next prune
            message = str(exc).replace(str(path), Path(path).name)
            raise refuse(gr, message, opts.debug) from exc
        finally:  # a good one is kept a while: clients sending one file share its stored path
            prune_uploads(max_upload_total(max_seconds))
        spec = spectrogram_figure(a, p.hop_length / p.sample_rate)
        timeline = timeline_figure(a, model.genres, p.window_seconds)
        plt.close("all")
        return a.probabilities, spec, timeline

    words = page_words(model.genres)
    with gr.Blocks(title="audio-net demo", analytics_enabled=False) as app:
        model_card(
            gr,
            f"audio-net: {words['what']}",
            f"Upload or record {words['input']} (any length up to {max_seconds:g} s, any sample "
            f"rate). It is cut into {p.window_seconds:g} s windows every {p.hop_seconds:g} s; the "
            f"{words['label']} is the mean of the windows' probabilities. Labels: "
            f"{', '.join(model.genres)}.",
            served,
            str(device),
            [
                "model",
                "cv_folds",
                "test_clip_accuracy",
                "test_clip_accuracy_std",
                "test_macro_f1",
                "baseline_clip_accuracy",
                "baseline_clip_accuracy_std",
            ],
        )
        with gr.Row():
            audio = gr.Audio(
                sources=["upload", "microphone"], type="filepath", label=words["input"]
            )
            genres = gr.Label(num_top_classes=3, label=f"top {words['label']}s", elem_id="genres")
        spec = gr.Plot(label="log-mel spectrogram")
        timeline = gr.Plot(label="per-window predictions")
        # a refused file is one message: the error badge shows on the answer, not on all three
        gr.Button("Classify", variant="primary").click(
            classify, audio, [genres, spec, timeline], api_name="classify", show_progress_on=genres
        )
    return app


def page_words(labels: list[str]) -> dict[str, str]:
    """The page's words for what the model classifies: music genres for GTZAN's ten labels,
    sounds and labels for anything else (a model trained on your own label folders)."""
    if sorted(labels) == sorted(GENRES):
        return {"what": "music genre", "input": "music", "label": "genre"}
    return {"what": "sound classifier", "input": "a sound", "label": "label"}


def max_upload_bytes(max_seconds: float) -> int:
    """The largest upload worth reading: ``max_seconds`` of 48 kHz stereo 32-bit WAV, plus 1 MB
    of headers and tags (a longer file is refused by Gradio before it is stored)."""
    return int(max_seconds * 48_000 * 2 * 4) + (1 << 20)


def max_upload_total(max_seconds: float) -> int:
    """What all stored uploads may hold together: 8 of the largest (oldest pruned first)."""
    return 8 * max_upload_bytes(max_seconds)


def run_demo(opts: DemoConfig) -> int:
    """``audio-net demo``: the page, served until Ctrl-C."""
    max_seconds = opts.max_seconds
    return serve(
        build_app(opts, max_seconds),
        opts,
        max_file_size=max_upload_bytes(max_seconds),
        max_upload_total=max_upload_total(max_seconds),
    )
