"""A randomly initialised pretrained-model folder in transformers' layout, of a real model's shape,
for the GPU check on a machine that cannot download weights:

    python tools/random_pretrained.py ast OUT_DIR   # AST-Base (87M parameters, 1024 x 128 input)

Its timings and memory are those of the real model; its accuracy is not (the weights are random).
"""

from __future__ import annotations

import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] != "ast":
        print(__doc__, file=sys.stderr)
        return 2
    import transformers

    out = Path(argv[1])
    config = transformers.ASTConfig()  # the AudioSet models' shape: 12 x 768, 1024 frames
    transformers.ASTForAudioClassification(config).save_pretrained(out)
    transformers.ASTFeatureExtractor().save_pretrained(out)
    print(f'{{"folder": "{out}", "model": "ast-base", "random": true}}')
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
