#!/usr/bin/env bash
# The main job on a small real corpus: tokenize Debian's English fortunes with the GPT-2 BPE
# tokenizer, then train configs/tiny.json on them, printing losses, evaluation and samples and
# writing checkpoints under runs/tiny. Extra arguments go to `loom train` (e.g. --max_steps 50).
# Usage: bash scripts/demo.sh [--flag value ...]
set -euo pipefail
cd "$(dirname "$0")/.."
LOOM=${BUILD_DIR:-build}/loom
[ -x "$LOOM" ] || { echo "demo: $LOOM not found; run: bash scripts/setup.sh" >&2; exit 1; }
CORPUS=/usr/share/games/fortunes
[ -d "$CORPUS" ] || { echo "demo: $CORPUS not found; run: bash scripts/setup.sh" >&2; exit 1; }

if [ ! -f data/fortunes/meta.json ]; then
  "$LOOM" tokenize --input "$CORPUS" --out data/fortunes --val-fraction 0.05
fi
RESUME=()
if [ -f runs/tiny/latest ]; then
  echo "demo: runs/tiny holds an earlier run: continuing it (rm -rf runs/tiny to start over)"
  RESUME=(--resume latest)
fi
"$LOOM" train --config configs/tiny.json --data_dir data/fortunes --out_dir runs/tiny "${RESUME[@]}" "$@"
echo "demo: checkpoints in runs/tiny; try: $LOOM generate --checkpoint runs/tiny/latest --prompt 'The meaning of life'"
