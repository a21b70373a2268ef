#!/usr/bin/env bash
# The prepared device check: every project's `bench` (one JSON object each) and short real
# training runs, from source, with the lent machine's own torch. Run from the repository root,
# after tools/gpu-prepare.sh here, through the device tool with carry [".whl", ".devdata"]:
#   bash tools/gpu-check.sh            # writes $OUT/<project>-bench.json and $OUT/log
# PY=.venv/bin/python OUT=/tmp/out bash tools/gpu-check.sh  rehearses it on a CPU machine.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
OUT=${OUT:-/tmp/gpu-check}
mkdir -p "$OUT"
if [ -d .whl ] && [ "$PY" = python3 ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=shared/src:projects/intro-nn/src:projects/audio-net/src:projects/austen-net/src:projects/multi-net/src${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1 DL_DATA_DIR=$PWD/.devdata MPLBACKEND=Agg
runs=$(mktemp -d)
step() {  # step NAME MODULE ARGS...: run one command, keep its summary (the last stdout line)
    local name=$1 module=$2
    shift 2
    echo "== $name: $module $*" | tee -a "$OUT/log"
    local t0=$SECONDS
    "$PY" -m "$module" "$@" --out "$runs/$name" --quiet > "$runs/$name.stdout" 2>> "$OUT/log"
    local rc=$?
    tail -n 1 "$runs/$name.stdout" > "$OUT/$name.json"
    echo "rc=$rc after $((SECONDS - t0)) s: $(cat "$OUT/$name.json")" | tee -a "$OUT/log"
}
"$PY" -c "import torch; print('torch', torch.__version__, torch.cuda.is_available() and torch.cuda.get_device_name())" | tee -a "$OUT/log"
step intro-nn-bench intro_nn.cli bench --data-dir .devdata
step audio-net-bench audio_net.cli bench --data-dir .devdata --no-download
step austen-net-bench austen_net.cli bench
step multi-net-bench multi_net.cli bench --no-pretrained
# MNIST on the device from the 10k test digits (full MNIST cannot be fetched there)
step intro-nn-mlp intro_nn.cli train mnist --data-dir .devdata/mnist
step intro-nn-cnn intro_nn.cli train mnist --model cnn --data-dir .devdata/mnist
echo "done: $(ls "$OUT")" | tee -a "$OUT/log"
