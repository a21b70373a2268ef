"""Pretrained encoders: open_clip's image and text towers; log-mel audio through a small CNN or a
ResNet18 (ImageNet weights, conv1 averaged to one channel), or CLAP's pretrained audio embedding
(``multi_net.clap``) through a projection."""

from __future__ import annotations

import contextlib
import logging
import socket
from pathlib import Path

import open_clip
import torch
import torchaudio
from torch import nn

from shared.errors import UserError
from shared.resnet import load_imagenet, resnet18_one_channel

# Two tiny CLIPs for random-weight training on a CPU, both with a 2-layer text transformer:
# mn-tiny (a 2-layer ViT with 16x16 patches: tests and smoke runs) and mn-synth, whose image tower
# is replaced by ``FrameCNN`` (the synthetic benchmark: see ``load_clip``).
for _name in ("mn-tiny", "mn-synth"):
    open_clip.add_model_config(str(Path(__file__).parent / "model_configs" / f"{_name}.json"))
FRAME_CNN_MODELS = {"mn-synth"}


class FrameCNN(nn.Module):
    """A small image tower that keeps WHERE things are: four stride-2 conv blocks (64 -> 4 pixels
    wide), then the 4x4 map flattened (not pooled) into one linear layer. Pooled towers (a ViT's
    class token, CLIP ResNets' attention pool) learnt shape and colour but not the direction of
    motion, which only the frame-to-frame change of position shows."""

    def __init__(self, out_dim: int, image_size: int = 64, width: int = 16) -> None:
        super().__init__()
        chans = [3, width, 2 * width, 4 * width, 4 * width]
        layers: list[nn.Module] = []
        for a, b in zip(chans[:-1], chans[1:], strict=True):
            layers += [
                nn.Conv2d(a, b, 3, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(b),
                nn.ReLU(inplace=True),
            ]
        self.features = nn.Sequential(*layers)
        side = image_size // 16
        self.proj = nn.Linear(chans[-1] * side * side, out_dim)
        self.image_size = image_size
        self.output_dim = out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.features(x).flatten(1))


CLIP_MEAN = torch.tensor(open_clip.OPENAI_DATASET_MEAN).view(1, 3, 1, 1)
CLIP_STD = torch.tensor(open_clip.OPENAI_DATASET_STD).view(1, 3, 1, 1)


def load_clip(name: str, tag: str | None, weights: Path | None, pretrained: bool):
    """(model, tokenizer, image_size). ``weights`` (a local file) wins over the pretrained ``tag``."""
    if name not in open_clip.list_models():
        raise UserError(f"unknown open_clip model {name!r}")
    if weights is not None and not Path(weights).is_file():
        raise UserError(f"--clip-weights {weights}: no such file")
    source = str(weights) if weights is not None else (tag if pretrained else None)
    if name in FRAME_CNN_MODELS and source is not None:
        raise UserError(f"{name} has no pretrained weights: train it with --no-pretrained")
    logging.getLogger().setLevel(logging.CRITICAL)  # open_clip logs a traceback before raising
    try:
        model = create_clip(name, source, from_hub=weights is None and source is not None)
    except UserError:
        raise
    except Exception as exc:  # torch.load, unpickling and shape errors alike
        if weights is not None:  # torch's own message would advise weights_only=False: never
            raise UserError(
                f"--clip-weights {weights}: not {name} weights that load safely "
                f"({exc.__class__.__name__}); pass the open_clip_pytorch_model.bin of {name}, "
                "or use --no-pretrained for random weights"
            ) from exc
        reason = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0]
        raise UserError(
            f"could not load open_clip {name} weights {source!r} ({reason}). "
            "Offline: pass --clip-weights PATH to a downloaded open_clip_pytorch_model.bin, or use "
            "--no-pretrained for random weights"
        ) from exc
    finally:
        logging.getLogger().setLevel(logging.WARNING)
    if name in FRAME_CNN_MODELS:
        size = model.visual.image_size
        size = size[0] if isinstance(size, (tuple, list)) else size
        model.visual = FrameCNN(model.visual.output_dim, int(size))
    size = model.visual.image_size
    size = size[0] if isinstance(size, (tuple, list)) else size
    return model, open_clip.get_tokenizer(name), int(size)


HUB_HOST = "huggingface.co"


@contextlib.contextmanager
def hub_offline():
    """huggingface_hub reads only its local cache meanwhile (no request, no retries)."""
    from huggingface_hub import constants  # open_clip's own dependency

    saved = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = saved


def hub_unreachable(host: str = HUB_HOST, timeout: float = 5.0) -> str | None:
    """Why ``host`` cannot be reached (one DNS look-up and one connection), or None."""
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
    except OSError as exc:
        return (exc.strerror or str(exc) or exc.__class__.__name__).lower()
    return None


def create_clip(name: str, source: str | None, *, from_hub: bool):
    """open_clip's model; pretrained weights by tag come from the local cache, else (online) are
    downloaded once. Offline and not cached: one message at once, instead of huggingface_hub's
    minute of retries."""
    if not from_hub:
        return open_clip.create_model(name, pretrained=source)
    try:
        with hub_offline():
            return open_clip.create_model(name, pretrained=source)
    except Exception:  # not in the cache: download, if the hub can be reached
        why = hub_unreachable()
        if why is not None:
            raise UserError(
                f"the pretrained {name} weights ({source}) are not in the local cache and "
                f"{HUB_HOST} cannot be reached ({why}): downloading them needs the internet "
                "once. Offline: --no-pretrained (random weights), or --clip-weights PATH to a "
                "downloaded open_clip_pytorch_model.bin"
            ) from None
    return open_clip.create_model(name, pretrained=source)


def clip_dim(model) -> int:
    return (
        int(model.text_projection.shape[1])
        if hasattr(model, "text_projection")
        else model.visual.output_dim
    )


@torch.no_grad()
def frame_features(clip, frames: torch.Tensor, batch: int = 256) -> torch.Tensor:
    """uint8 frames (N, K, 3, S, S) -> CLIP image features (N, K, D), L2-normalised."""
    n, k = frames.shape[:2]
    flat = frames.reshape(n * k, *frames.shape[2:])
    out = []
    for i in range(0, len(flat), batch):
        x = flat[i : i + batch].float().div_(255)
        x = (x - CLIP_MEAN.to(x.device)) / CLIP_STD.to(x.device)
        out.append(nn.functional.normalize(clip.encode_image(x).float(), dim=-1))
    return torch.cat(out).view(n, k, -1)


@torch.no_grad()
def text_features(clip, tokenizer, texts: list[str], device, batch: int = 512) -> torch.Tensor:
    out = []
    for i in range(0, len(texts), batch):
        tokens = tokenizer(texts[i : i + batch]).to(device)
        out.append(nn.functional.normalize(clip.encode_text(tokens).float(), dim=-1))
    return torch.cat(out) if out else torch.zeros(0, clip_dim(clip), device=device)


class LogMel(nn.Module):
    def __init__(self, rate: int = 16000, n_mels: int = 64) -> None:
        super().__init__()
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=rate, n_fft=400, hop_length=160, n_mels=n_mels
        )

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return torch.log(self.mel(audio) + 1e-6)


class AudioCNN(nn.Module):
    """Log-mel (B, n_mels, T) -> vector: four conv blocks, then mean+max pooling over time."""

    def __init__(self, n_mels: int = 64, width: int = 64, out_dim: int = 256) -> None:
        super().__init__()
        chans = [1, width // 2, width, width * 2, width * 2]
        blocks = []
        for a, b in zip(chans[:-1], chans[1:], strict=True):
            blocks += [
                nn.Conv2d(a, b, 3, padding=1, bias=False),
                nn.BatchNorm2d(b),
                nn.ReLU(),
                nn.MaxPool2d(2),
            ]
        self.net = nn.Sequential(*blocks)
        self.out = nn.Linear(2 * chans[-1], out_dim)

    def forward(self, logmel: torch.Tensor) -> torch.Tensor:
        h = self.net(logmel.unsqueeze(1)).mean(dim=2)  # (B, C, T')
        return self.out(torch.cat([h.mean(-1), h.amax(-1)], dim=-1))


class AudioResNet(nn.Module):
    """Log-mel (B, n_mels, T) -> vector through torchvision's ResNet18 with one input channel.

    A BatchNorm on the raw log-mels brings them to the scale the ImageNet filters expect; the
    ResNet's head is a fresh ``out_dim`` projection. Built with random weights; ``load_imagenet``
    puts the ImageNet (or a local file's) weights into everything but that head.
    """

    def __init__(self, out_dim: int = 256) -> None:
        super().__init__()
        self.scale = nn.BatchNorm2d(1)
        self.net = resnet18_one_channel(out_dim)

    def load_imagenet(self, weights_path: Path | None = None) -> None:
        load_imagenet(self.net, weights_path)

    def forward(self, logmel: torch.Tensor) -> torch.Tensor:
        return self.net(self.scale(logmel.unsqueeze(1)))


class ClapProjection(nn.Module):
    """A cached CLAP audio embedding (B, audio_dim) -> the fusion model's audio token: the
    pretrained tower stays frozen (its embeddings are computed once, like CLIP's frame features);
    only this LayerNorm and Linear train."""

    def __init__(self, audio_dim: int, out_dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(audio_dim)
        self.proj = nn.Linear(audio_dim, out_dim)

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        return self.proj(self.norm(embedding))


def audio_encoder(
    kind: str, n_mels: int, out_dim: int, width: int = 64, audio_dim: int = 512
) -> nn.Module:
    """The audio token's encoder: ``cnn`` and ``resnet18`` read log-mels and train; ``clap``
    projects CLAP's frozen, cached embedding of ``audio_dim`` values."""
    if kind == "clap":
        return ClapProjection(audio_dim, out_dim)
    if kind == "cnn":
        return AudioCNN(n_mels, width=width, out_dim=out_dim)
    if kind == "resnet18":
        return AudioResNet(out_dim)
    raise ValueError(f"unknown audio encoder {kind!r}")
