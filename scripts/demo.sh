#!/usr/bin/env bash
# The main job on a small real corpus, in about 3 minutes on 2 cores: Debian's English fortunes
# as bytes (a byte-level model learns to spell quickly, so its samples visibly improve from
# noise to words), configs/demo.json (4 layers, d_model 128), printing losses, evaluation and a
# sample every eval_freq steps, checkpoints under runs/demo. Ends with the val loss and a sample.
# Extra arguments go to `loom train` (e.g. --max_steps 50).
# Usage: bash scripts/demo.sh [--flag value ...]
set -euo pipefail
cd "$(dirname "$0")/.."
LOOM=${BUILD_DIR:-build}/loom
[ -x "$LOOM" ] || { echo "demo: $LOOM not found; run: bash scripts/setup.sh" >&2; exit 1; }
CORPUS=/usr/share/games/fortunes
[ -d "$CORPUS" ] || { echo "demo: $CORPUS not found; run: bash scripts/setup.sh" >&2; exit 1; }
DATA=data/fortunes-byte OUT=runs/demo

if [ ! -f "$DATA/meta.json" ]; then
  "$LOOM" tokenize --input "$CORPUS" --out_dir "$DATA" --tokenizer byte --val_fraction 0.05
fi
# --resume auto: continues an earlier run of the demo if there is one (rm -rf runs/demo to start over).
"$LOOM" train --config configs/demo.json --data_dir "$DATA" --out_dir "$OUT" --resume auto "$@"

VAL=$(grep '"type":"eval"' "$OUT/metrics.jsonl" | tail -1 | sed 's/.*"val_loss":\([0-9.]*\).*/\1/' | awk '{ printf "%.3f", $1 }')
echo
echo "demo: final val loss ${VAL:-?} nats per byte; a sample from $OUT/latest:"
"$LOOM" generate --checkpoint "$OUT/latest" --prompt "The meaning of life is " --max-new-tokens 120 \
  --temperature 0.6 --top-k 20 --seed 7
echo
echo "demo: plot of the run: $LOOM report $OUT"
