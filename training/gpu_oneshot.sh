#!/usr/bin/env bash
# One GPU lease, one training run: the current tokenizer recipe for MINUTES on one GPU, checkpoint and logs to $OUT.
#
# Prepare here (CPU), then carry the folder gpu/ (about 45 MiB; the device tool's limit is 64 MiB in all):
#   python -m training.pack_cache ~/.cache/vatcodec/cache gpu/cache      # fp16, 2048 surface + 5120 queries per shape
#   python -m training.export <best run>/last.safetensors gpu/init.safetensors
#   CPU check, seconds:  STEPS=3 BATCH=2 MINUTES=1 OUT=/tmp/gpu-check bash training/gpu_oneshot.sh
# On the device:  bash training/gpu_oneshot.sh   (run's carry: ["gpu"]; what comes back lies under $OUT)
# Only torch, numpy, safetensors and rich are needed there: the training path imports nothing else.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${OUT:?set OUT to the folder that comes back}"
MINUTES=${MINUTES:-9}          # training time; start-up, validation and export come on top (about 1 min)
STEPS=${STEPS:-12000}          # sets the cosine schedule; MINUTES cuts it short if the GPU is slower
BATCH=${BATCH:-64}
LR=${LR:-1e-3}
DATA=${DATA:-gpu/cache}
INIT=${INIT:-gpu/init.safetensors}
CONFIG=${CONFIG:-vat-tp2}       # the current recipe (docs/tokenizer.md): the triplane latent, the grown encoder
OVERRIDES=${OVERRIDES:-'{}'}
PY=${PY:-python3}
RUN=$(mktemp -d)/run            # the full checkpoint (fp32 + EMA + optimizer) is too big to come back
mkdir -p "$OUT"
[ -f "$DATA/index.json" ] || { echo "error: no packed cache at $DATA (see the top of this script)" >&2; exit 2; }
[ -f "$INIT" ] || { echo "error: no initial checkpoint at $INIT (see the top of this script)" >&2; exit 2; }
"$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available())' | tee "$OUT/env.txt"
set +e
PYTHONPATH=. "$PY" -m training.tokenizer --data "$DATA" --out "$RUN" --init "$INIT" --config "$CONFIG" --overrides "$OVERRIDES" \
  --steps "$STEPS" --stage1-steps 0 --batch-size "$BATCH" --lr "$LR" --warmup 200 --val-every 0 \
  --ckpt-every 1000 --log-every 50 --val-shapes 33 --max-minutes "$MINUTES" 2>&1 | tee "$OUT/train.log"
rc=${PIPESTATUS[0]}
set -e
cp "$RUN/metrics.jsonl" "$OUT/metrics.jsonl" 2>/dev/null || true
if [ -f "$RUN/last.safetensors" ]; then  # also after an error: the last checkpoint is what the lease bought
  PYTHONPATH=. "$PY" -m training.export "$RUN/last.safetensors" "$OUT/$CONFIG-gpu.safetensors" \
    --note "{\"hardware\": \"one GPU lease\", \"minutes\": $MINUTES}" | tee "$OUT/model_id.txt"
fi
exit "$rc"
