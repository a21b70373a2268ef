#!/usr/bin/env bash
# The prepared device check: every GPU code path of the four projects and the quality runs that
# need a GPU, from source, with the lent machine's own torch, most valuable first, each step under
# its own timeout (one failure does not cost the rest). Run from the repository root, after
# tools/gpu-prepare.sh here, through the device tool with carry [".whl", ".devdata"]:
#   bash tools/gpu-check.sh        # $OUT/<step>.json (each step's summary), $OUT/<step>.log,
#                                  # $OUT/steps.jsonl (one line per step: exit status, seconds)
# PY=.venv/bin/python OUT=/tmp/out bash tools/gpu-check.sh   rehearses it on a CPU (shorter runs).
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
if "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    GPU=1; MINUTES=5; TRAIN_LIMIT=450; SYNTH="--videos 1440"; STEPS=200; BUDGET=${BUDGET:-540}
    PRESET=default; COMPILE=--compile
else  # a CPU rehearsal: the same steps, smaller and uncompiled (inductor on a CPU takes minutes)
    GPU=0; MINUTES=0.5; TRAIN_LIMIT=120; SYNTH="--small --videos 160"; STEPS=20; BUDGET=${BUDGET:-840}
    PRESET=tiny; COMPILE=--no-compile
fi
# The whole check stays within $BUDGET seconds (9 minutes on a GPU): a step gets what is left of
# it at most, and a step that would start with under 20 s left is recorded as skipped.
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda' if torch.cuda.is_available() else 'cpu', torch.cuda.is_available() and torch.cuda.get_device_name())" | tee "$OUT/device.txt"

step() {  # step NAME SECONDS CMD...: run, keep the summary (last stdout line), record status
    local name=$1 limit=$2
    shift 2
    [ "$1" = py ] && { shift; set -- "$PY" -m "$@"; }  # timeout runs programs, not functions
    local left=$((BUDGET - SECONDS))
    if [ "$left" -lt 20 ]; then
        echo "{\"step\": \"$name\", \"rc\": null, \"seconds\": 0, \"skipped\": \"over the ${BUDGET} s budget\"}" >> "$OUT/steps.jsonl"
        echo "== $name skipped: over the ${BUDGET} s budget" | tee -a "$OUT/log"
        return
    fi
    [ "$left" -lt "$limit" ] && limit=$left
    echo "== $name (limit ${limit}s): $*" | tee -a "$OUT/log"
    local t0=$SECONDS
    timeout --signal=TERM --kill-after=20 "$limit" "$@" > "$runs/$name.stdout" 2> "$OUT/$name.log"
    local rc=$?
    tail -n 1 "$runs/$name.stdout" > "$OUT/$name.json"
    local secs=$((SECONDS - t0))
    "$PY" - "$name" "$rc" "$secs" "$OUT/$name.json" >> "$OUT/steps.jsonl" <<'PYEOF'
import json, sys
name, rc, secs, path = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
try:
    summary = json.loads(open(path).read() or "null")
except ValueError:
    summary = None
print(json.dumps({"step": name, "rc": rc, "seconds": secs, "summary": summary}))
PYEOF
    echo "rc=$rc after ${secs} s" | tee -a "$OUT/log"
}

# 1. austen-net: bench in bf16 compiled; the default preset for 5 minutes on the six novels;
#    evaluate; 200 generated tokens in bf16 with the cache
step austen-bench 240 py austen_net.cli bench --precision bf16 "$COMPILE" --out "$runs/ab" --quiet
step austen-train "$TRAIN_LIMIT" py austen_net.cli train --preset "$PRESET" \
    --corpus-dir .devdata/austen --max-minutes "$MINUTES" --eval-every 500 --out "$runs/at" --quiet
step austen-evaluate 120 py austen_net.cli evaluate --checkpoint "$runs/at/checkpoints/best.pt" \
    --corpus-dir .devdata/austen --out "$runs/ae" --quiet
step austen-generate 60 py austen_net.cli generate --checkpoint "$runs/at/checkpoints/best.pt" \
    --prompt "It is a truth universally acknowledged" --max-new-tokens 200 --seed 1
# 2. audio-net: the end-to-end training bench (data + augmentation + model, bf16, compiled), then
#    a short training run on the carried clips
step audio-bench 240 py audio_net.cli bench --precision bf16 "$COMPILE" --data-dir .devdata \
    --no-download --out "$runs/ub" --quiet
step audio-train 240 py audio_net.cli train --model resnet18 --no-pretrained --data-dir .devdata \
    --no-download --epochs 8 --out "$runs/ut" --quiet
# 2b. audio-net: AST-Base fine-tuned on the carried clips (random weights of the real shape: the
#     machine cannot download them), where this machine's python has transformers (it is not
#     carried: its wheels would pass the 64 MiB limit); time per epoch and peak memory
if "$PY" -c "import transformers" 2>/dev/null; then
    step audio-ast-folder 180 "$PY" tools/random_pretrained.py ast "$runs/astsrc"
    step audio-ast-train 360 py audio_net.cli train --model ast --model-source "$runs/astsrc" \
        --data-dir .devdata --no-download --epochs 2 --precision bf16 --out "$runs/uat" --quiet
else
    echo '{"step": "audio-ast-train", "rc": null, "seconds": 0, "skipped": "no transformers on this machine"}' >> "$OUT/steps.jsonl"
fi
# 3. multi-net: ViT-B/32 frame embedding and the 1M search on the GPU; the synthetic benchmark
step multi-bench 240 py multi_net.cli bench --no-pretrained --out "$runs/mb" --quiet
# shellcheck disable=SC2086  # $SYNTH holds two flags
step multi-synth-data 240 py multi_net.cli data synth --out "$runs/synth" $SYNTH --quiet
step multi-synth-train 420 py multi_net.cli train --videos "$runs/synth/videos" \
    --annotations "$runs/synth/annotations.json" --preset synth --cache-dir "$runs/synth/cache" \
    --out "$runs/mt" --quiet
# 4. intro-nn: MNIST MLP and CNN in bf16, and the bench's on-device epoch
step intro-mlp 180 py intro_nn.cli train mnist --precision bf16 --data-dir .devdata/mnist \
    --out "$runs/im" --quiet
step intro-cnn 180 py intro_nn.cli train mnist --model cnn --precision bf16 \
    --data-dir .devdata/mnist --out "$runs/ic" --quiet
step intro-bench 180 py intro_nn.cli bench --data-dir .devdata --out "$runs/ib" --quiet
# 5. the process-group path: torchrun with one process (NCCL on a GPU, gloo on a CPU); the MNIST
#    CNN's BatchNorm becomes SyncBatchNorm under NCCL
step torchrun-austen 180 py torch.distributed.run --standalone --nproc-per-node 1 \
    -m austen_net.cli train --preset tiny --corpus-dir .devdata/austen --max-steps "$STEPS" \
    --eval-every 100 --out "$runs/ta" --quiet
step torchrun-cnn 180 py torch.distributed.run --standalone --nproc-per-node 1 \
    -m intro_nn.cli train mnist --model cnn --epochs 2 --data-dir .devdata/mnist \
    --out "$runs/tc" --quiet
# 6. austen-net fine-tuning: one step of full, LoRA (ours) and peft at Llama-3.2-1B's shape
#    (random weights from its config; peft's mode reports itself missing where peft is absent),
#    and FSDP2 through the process group (one process: NCCL's path, the sharded checkpoint gather)
if [ "$GPU" = 1 ]; then FT_SHAPE=llama-3.2-1b; else FT_SHAPE=tiny; fi
step austen-finetune 240 py austen_net.cli bench --finetune --shape "$FT_SHAPE" \
    --finetune-steps 3 --out "$runs/af" --quiet
step torchrun-fsdp 180 py torch.distributed.run --standalone --nproc-per-node 1 \
    -m austen_net.cli train --preset tiny --corpus-dir .devdata/austen --max-steps "$STEPS" \
    --eval-every 100 --fsdp --out "$runs/tf" --quiet
echo "done: $(wc -l < "$OUT/steps.jsonl") steps, gpu=$GPU" | tee -a "$OUT/log"
