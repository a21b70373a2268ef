"""CLAP's audio tower (LAION's contrastive language-audio pretraining, Wu et al. 2023) as multi-net's
pretrained audio encoder: ``train --audio-encoder clap --audio-source SOURCE``.

CLAP was trained to put a sound and the text that describes it close together, the same kind of
space multi-net searches in; its audio tower (HTSAT, a Swin transformer over a 64-bin log-mel) is
frozen here and its projected embedding, computed once per video and cached like the CLIP frame
features, becomes the fusion model's audio token. The front end is ours (``ClapLogMel``, batched
on the device), equal to transformers' ``ClapFeatureExtractor`` (unfused models, 10 s at 48 kHz)
to 1e-4; the embeddings equal ``ClapModel``'s audio projection to 1e-4 (both tested on a tiny
random CLAP that transformers builds from a config).

SOURCE is a local folder in transformers' layout (``config.json``, ``model.safetensors``,
``preprocessor_config.json``) or a Hub name (``laion/clap-htsat-unfused``); offline, a Hub name is
one message naming the folder to pass instead.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torchaudio
from torch import nn

from shared.errors import UserError
from shared.hub import (
    Source,
    check_config_fits_weights,
    config_number,
    from_pretrained_quietly,
    read_model_json,
    safetensors_file,
)

DEFAULT_SOURCE = "laion/clap-htsat-unfused"
SOURCE = Source("multi-net", "--audio-source", "the CLAP audio encoder", DEFAULT_SOURCE)


class ClapLogMel(nn.Module):
    """Waveforms (B, L) at 48 kHz -> CLAP's input (B, 1, frames, 64): a centred STFT (periodic
    Hann window of 1024, hop 480, reflect padding), power, librosa's (Slaney) mel filters from
    ``frequency_min`` to ``frequency_max``, 10*log10(max(mel, 1e-10)). The power spectrum is
    taken in float64, as the feature extractor's numpy does."""

    def __init__(
        self,
        rate: int = 48000,
        n_fft: int = 1024,
        hop: int = 480,
        n_mels: int = 64,
        f_min: float = 50.0,
        f_max: float = 14000.0,
        seconds: float = 10.0,
    ) -> None:
        super().__init__()
        self.rate, self.n_fft, self.hop = rate, n_fft, hop
        self.samples = int(seconds * rate)  # CLAP's input length: 10 s
        self.register_buffer("window", torch.hann_window(n_fft, dtype=torch.float64), False)
        fbanks = torchaudio.functional.melscale_fbanks(
            n_fft // 2 + 1, f_min, f_max, n_mels, rate, norm="slaney", mel_scale="slaney"
        )
        self.register_buffer("fbanks", fbanks.double(), persistent=False)

    @staticmethod
    def from_folder(folder: Path) -> ClapLogMel:
        pre = read_model_json(folder / "preprocessor_config.json", required=False)
        if pre.get("truncation", "rand_trunc") == "fusion" and _fused(folder):
            raise UserError(f"{folder}: a fused CLAP (enable_fusion): use an unfused model")
        return ClapLogMel(
            int(config_number(pre, "sampling_rate", 48000, folder, 384000, zero=True)),
            int(config_number(pre, "fft_window_size", 1024, folder, 1 << 16, zero=True)),
            int(config_number(pre, "hop_length", 480, folder, 1 << 16, zero=True)),
            int(config_number(pre, "feature_size", 64, folder, 1024, zero=True)),
            float(config_number(pre, "frequency_min", 50.0, folder, 384000, zero=True)),
            float(config_number(pre, "frequency_max", 14000.0, folder, 384000, zero=True)),
            float(config_number(pre, "max_length_s", 10, folder, 600, zero=True)),
        )

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        """Waveforms cut or zero-padded to CLAP's length (a decoded track is already padded with
        silence to --audio-seconds), then the log-mel."""
        waves = nn.functional.pad(waves, (0, max(0, self.samples - waves.shape[-1])))
        spec = torch.stft(
            waves[..., : self.samples].double(),
            self.n_fft,
            self.hop,
            window=self.window,
            center=True,
            pad_mode="reflect",
            return_complex=True,
        )
        power = torch.addcmul(spec.real.square(), spec.imag, spec.imag)  # (B, freqs, frames)
        mel = torch.matmul(power.transpose(1, 2), self.fbanks)  # (B, frames, n_mels)
        return (10.0 * torch.log10(mel.clamp_min(1e-10))).float().unsqueeze(1)


def _fused(folder: Path) -> bool:
    config = read_model_json(folder / "config.json")
    audio = config.get("audio_config", config)
    return isinstance(audio, dict) and bool(audio.get("enable_fusion"))


class ClapAudioEncoder(nn.Module):
    """Waveforms at CLAP's rate -> CLAP audio embeddings (B, projection_dim), L2-normalised, as
    the CLIP frame features are. Frozen: used under ``no_grad`` to fill the feature cache."""

    def __init__(self, tower: nn.Module, logmel: ClapLogMel) -> None:
        super().__init__()
        self.tower, self.logmel = tower.eval(), logmel
        self.dim = int(tower.config.projection_dim)

    @torch.no_grad()
    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        features = self.logmel(waves)
        longer = torch.zeros(len(waves), 1, dtype=torch.bool, device=waves.device)
        embeds = self.tower(input_features=features, is_longer=longer).audio_embeds
        return nn.functional.normalize(embeds.float(), dim=-1)


def load_clap_audio(source: str | None, quiet: bool = False) -> tuple[ClapAudioEncoder, str]:
    """(the CLAP audio encoder of ``source``, an identity for the feature cache). A full CLAP
    folder (``ClapModel``) or an audio-only one both load; the network the config describes is
    built on the meta device and its parameter count compared with the file's before transformers
    allocates anything."""
    SOURCE.require()
    from transformers import ClapAudioConfig, ClapAudioModelWithProjection  # the pretrained extra

    folder = SOURCE.folder(source, quiet)
    raw = read_model_json(folder / "config.json")
    if raw.get("model_type") not in ("clap", "clap_audio_model"):
        raise UserError(f"{folder}: model_type {raw.get('model_type')!r} is not a CLAP model")
    weights = safetensors_file(folder)
    try:
        audio = raw.get("audio_config", raw) if raw.get("model_type") == "clap" else raw
        kept = {k: v for k, v in audio.items() if k not in ("model_type", "projection_dim")}
        dim = raw.get("projection_dim", audio.get("projection_dim", 512))
        config = ClapAudioConfig(**kept, projection_dim=dim)
        with torch.device("meta"):
            probe = ClapAudioModelWithProjection(config)
    except (TypeError, ValueError, KeyError, RuntimeError) as exc:
        raise UserError(f"{folder}: not a CLAP audio config ({exc})") from exc
    wanted = sum(p.numel() for p in probe.parameters())
    check_config_fits_weights(wanted, weights, "an audio tower")
    # a full CLAP's text tower is "unexpected" here: not used
    tower = from_pretrained_quietly(ClapAudioModelWithProjection, folder, "CLAP weights")
    st = weights.stat()
    identity = f"clap:{source or DEFAULT_SOURCE}:{st.st_size}:{st.st_mtime_ns}"
    return ClapAudioEncoder(tower.float(), ClapLogMel.from_folder(folder)), identity
