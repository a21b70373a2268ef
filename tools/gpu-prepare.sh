#!/usr/bin/env bash
# Prepare, on a build machine with PyPI access, what tools/gpu-check.sh needs on a lent GPU machine
# that reaches no network: the wheels its python3 (3.12, torch 2.11) lacks, in .whl/, and the real
# data samples, in .devdata/ (both git-ignored; name both in the device run's `carry`, whose limit
# is 64 MiB in all: this script prints the size and fails above it).
#   bash tools/gpu-prepare.sh [SAMPLES_DIR]      # default: ../shared/data
set -euo pipefail
cd "$(dirname "$0")/.."
samples=${1:-../shared/data}
PY=${PY:-.venv/bin/python}
rm -rf .whl .devdata
mkdir -p .whl .devdata
# versions as uv.lock resolves them for Python 3.12
wheels=(av==19.0.2 open-clip-torch==3.3.0 ftfy==6.3.1 wcwidth==0.9.4 soundfile==0.14.0
    cffi==2.1.1 pycparser==3.12 pooch==1.9.0 platformdirs==4.14.8)
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl "${wheels[@]}"
# intro-nn: the loan table and the MNIST test pair; austen-net: the six novels; multi-net: the split
# files and the five clips; audio-net: 3 clips per genre (enough for a train/val/test split), cut to
# 10 s and stored as FLAC to stay under the carry limit
mkdir -p .devdata/mnist .devdata/loan .devdata/austen
cp "$samples"/mnist/* .devdata/mnist/
cp "$samples"/loan/loan_data.csv .devdata/loan/
cp "$samples"/austen/*.txt .devdata/austen/
cp -r "$samples"/msrvtt .devdata/
"$PY" - "$samples/gtzan/genres_original" .devdata/gtzan/genres_original <<'PYEOF'
import sys
from pathlib import Path

import soundfile as sf

src, dst = Path(sys.argv[1]), Path(sys.argv[2])
for genre in sorted(p for p in src.iterdir() if p.is_dir()):
    (dst / genre.name).mkdir(parents=True, exist_ok=True)
    for wav in sorted(genre.glob("*.wav"))[:3]:
        data, rate = sf.read(wav)
        sf.write(dst / genre.name / (wav.stem + ".flac"), data[: 10 * rate], rate)
PYEOF
du -sh .whl .devdata
total=$(du -sk .whl .devdata | awk '{s += $1} END {print s}')
echo "carried: $((total / 1024)) MiB of 64"
[ "$total" -le $((64 * 1024)) ] || { echo "over the 64 MiB carry limit" >&2; exit 1; }
