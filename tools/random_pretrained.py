"""A randomly initialised pretrained-model folder in transformers' layout, for trying (and testing)
`--model ast` and `--audio-encoder clap` on a machine that cannot download the real weights:

    python tools/random_pretrained.py ast OUT_DIR          # AST-Base's shape (87M parameters)
    python tools/random_pretrained.py clap OUT_DIR         # CLAP-HTSAT-unfused's shape (153M)
    python tools/random_pretrained.py ast OUT_DIR --tiny   # 2 layers x 32: seconds on a CPU
    python tools/random_pretrained.py clap OUT_DIR --tiny  # one block per stage, 32 wide

Run it in the project's environment (`uv run --package audio-net --extra pretrained python ...`),
then point the project at the folder (`--model-source OUT_DIR`, `--audio-source OUT_DIR`). The full
shapes time and size like the real models; no accuracy comes from either (the weights are random).
`--tiny` perturbs every weight (transformers starts biases and norms at 0 and 1, which would hide a
weight read into the wrong place): the projects' tests build their folders with it.
`--labels a,b,c` names an AST head's labels (default: a head of 2 for the full shape, a,b,c tiny;
audio-net keeps the head only where the labels are yours, else it starts a new one).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def perturb(model, seed: int = 0) -> None:
    import torch

    torch.manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)


def ast(out: Path, tiny: bool, labels: list[str] | None) -> None:
    """AST: 1024 frames of 128 mel bins (10.24 s); tiny: 128 frames of 32 bins (1.28 s)."""
    import transformers

    shape = (
        dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
        | dict(max_length=128, num_mel_bins=32)
        if tiny
        else {}
    )
    if labels is None and tiny:
        labels = ["a", "b", "c"]
    if labels is not None:
        shape |= dict(
            id2label=dict(enumerate(labels)), label2id={name: i for i, name in enumerate(labels)}
        )
    config = transformers.ASTConfig(**shape)
    model = transformers.ASTForAudioClassification(config).eval()
    if tiny:
        perturb(model)
    model.save_pretrained(out)
    extractor = {k: shape[k] for k in ("max_length", "num_mel_bins") if k in shape}
    transformers.ASTFeatureExtractor(**extractor).save_pretrained(out)


def clap(out: Path, tiny: bool) -> None:
    """CLAP with HTSAT's audio tower and RoBERTa's text tower; tiny: a block per stage, 32 wide."""
    import transformers

    if tiny:
        audio = transformers.ClapAudioConfig(
            depths=[1, 1, 1, 1],
            patch_embeds_hidden_size=16,
            hidden_size=128,
            num_attention_heads=[1, 2, 4, 8],
        )
        text = transformers.ClapTextConfig(
            hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64
        )
        config = transformers.ClapConfig(
            text_config=text.to_dict(), audio_config=audio.to_dict(), projection_dim=32
        )
    else:
        config = transformers.ClapConfig()
    model = transformers.ClapModel(config).eval()
    if tiny:
        perturb(model)
    model.save_pretrained(out)
    transformers.ClapFeatureExtractor(
        truncation="rand_trunc", frequency_min=50, frequency_max=14000
    ).save_pretrained(out)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", choices=["ast", "clap"])
    parser.add_argument("out", type=Path)
    parser.add_argument("--tiny", action="store_true", help="a small shape, seconds on a CPU")
    parser.add_argument("--labels", help="an AST head's labels, comma-separated")
    args = parser.parse_args(argv)
    labels = args.labels.split(",") if args.labels else None
    if args.model == "ast":
        ast(args.out, args.tiny, labels)
    else:
        if labels is not None:
            parser.error("--labels names an AST head's labels")
        clap(args.out, args.tiny)
    size = "tiny" if args.tiny else "full"
    print(f'{{"folder": "{args.out}", "model": "{args.model}", "shape": "{size}", "random": true}}')
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
