#!/usr/bin/env bash
# Prepare, on a build machine with PyPI access, what tools/gpu-check.sh needs on a lent GPU machine
# that reaches no network: the wheels its python3 (3.12, torch 2.11) lacks, in .whl/, and the real
# data samples, in .devdata/ (both git-ignored; name both in the device run's `carry`).
#   bash tools/gpu-prepare.sh [SAMPLES_DIR]      # default: ../shared/data
set -euo pipefail
cd "$(dirname "$0")/.."
samples=${1:-../shared/data}
rm -rf .whl .devdata
mkdir -p .whl .devdata
# versions as uv.lock resolves them for Python 3.12
wheels=(av==19.0.2 open-clip-torch==3.3.0 ftfy==6.3.1 wcwidth==0.9.4 soundfile==0.14.0
    cffi==2.1.1 pycparser==3.12 pooch==1.9.0 platformdirs==4.14.8)
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl "${wheels[@]}"
# intro-nn: the loan table and the MNIST test pair; audio-net: one clip per genre (the bench
# repeats them); multi-net: the split files and the five clips
mkdir -p .devdata/mnist .devdata/loan .devdata/gtzan/genres_original
cp "$samples"/mnist/* .devdata/mnist/
cp "$samples"/loan/loan_data.csv .devdata/loan/
for dir in "$samples"/gtzan/genres_original/*/; do
    genre=$(basename "$dir")
    mkdir -p ".devdata/gtzan/genres_original/$genre"
    cp "$dir/$genre.00000.wav" ".devdata/gtzan/genres_original/$genre/"
done
cp -r "$samples"/msrvtt .devdata/
du -sh .whl .devdata
