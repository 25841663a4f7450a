#!/usr/bin/env bash
# A change that is not meant to change results must leave every layout's 20-step model
# byte-identical. This script trains configs/tiny.json with 4 layers and 4 heads for 20 steps at
# each layout below and prints the sha256 of each final model.safetensors; with --base REV it
# also builds REV in a git worktree (.layout-base/) and compares, layout by layout.
#
#   bash scripts/layout_identity.sh                   # hashes of this build
#   bash scripts/layout_identity.sh --base main       # this build against main's: exit 1 if any differ
#   bash scripts/layout_identity.sh --base c9a3275 --only dp2,pp2-zb1p
#   bash scripts/layout_identity.sh > base.txt; ...; bash scripts/layout_identity.sh --against base.txt
#
# Every rank runs one thread (OMP_NUM_THREADS=1), so the results do not depend on the core count.
# Hashes from different CPUs (AVX-512 or not) may differ: compare builds on one machine (--base).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BASE="" ONLY="" AGAINST=""
while [ $# -gt 0 ]; do
  case "$1" in
    --base) BASE=$2; shift 2 ;;
    --only) ONLY=$2; shift 2 ;;
    --against) AGAINST=$(realpath "$2"); shift 2 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "layout_identity: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

# name | flags after the common ones
LAYOUTS=(
  "1rank|--nproc 1"
  "dp2|--nproc 2"
  "dp2-zero1|--nproc 2 --zero 1"
  "dp2-zero2|--nproc 2 --zero 2"
  "tp2|--nproc 2 --tp 2"
  "pp2-1f1b|--nproc 2 --pp 2 --schedule 1f1b --micro_batches 4"
  "pp2-zb1p|--nproc 2 --pp 2 --schedule zb1p --micro_batches 4"
  "pp2-interleaved|--nproc 2 --pp 2 --schedule interleaved --virtual_stages 2 --micro_batches 4"
  "pp2xtp2|--nproc 4 --pp 2 --tp 2 --micro_batches 4"
  "bf16|--nproc 1 --precision bf16"
  "recompute-full|--nproc 1 --recompute full"
  "dp2-bf16-reduce|--nproc 2 --grad_reduce bf16"
)

# One work folder per checkout, so that two checkouts can run this at once.
WORK=${LAYOUT_IDENTITY_DIR:-/tmp/loom-layout-identity-$(echo "$ROOT" | sha256sum | cut -c1-8)}
mkdir -p "$WORK"
DATA=$WORK/data
if [ ! -f "$DATA/meta.json" ]; then
  "$ROOT/build/loom" tokenize --input /usr/share/games/fortunes --out "$DATA" --tokenizer byte \
    --val-fraction 0.05 >/dev/null 2>&1
fi

# run_all BINARY TAG: prints "layout sha256" for each layout
run_all() {
  local bin=$1 tag=$2
  for entry in "${LAYOUTS[@]}"; do
    local name=${entry%%|*} flags=${entry#*|}
    if [ -n "$ONLY" ] && [[ ",$ONLY," != *",$name,"* ]]; then continue; fi
    local out=$WORK/$tag/$name
    rm -rf "$out"; mkdir -p "$WORK/$tag"
    # shellcheck disable=SC2086
    if ! OMP_NUM_THREADS=1 timeout 300 "$bin" train --config "$ROOT/configs/tiny.json" --n_layer 4 \
        --n_head 4 --vocab_size 257 --data_dir "$DATA" --out_dir "$out" --max_steps 20 --eval_freq 0 \
        --sample_freq -1 --save_freq 0 --threads 1 --warmup_steps 5 $flags >"$out.log" 2>&1; then
      echo "$name FAILED (log: $out.log)"
      continue
    fi
    echo "$name $(sha256sum "$out/step_000020/model.safetensors" | cut -d' ' -f1)"
  done
}

if [ -z "$BASE" ] && [ -z "$AGAINST" ]; then
  run_all "$ROOT/build/loom" current
  exit 0
fi

if [ -n "$AGAINST" ]; then
  cp "$AGAINST" "$WORK/base.txt"
else
  BASE_DIR=$ROOT/.layout-base
  if [ ! -d "$BASE_DIR" ]; then git worktree add --detach "$BASE_DIR" "$BASE" >/dev/null
  else git -C "$BASE_DIR" checkout --detach -q "$BASE"; fi
  cmake -S "$BASE_DIR" -B "$BASE_DIR/build" -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF \
    -DLOOM_WITH_CUDA=OFF >/dev/null
  cmake --build "$BASE_DIR/build" -j"$(nproc)" --target loom >/dev/null
  run_all "$BASE_DIR/build/loom" base >"$WORK/base.txt"
fi
run_all "$ROOT/build/loom" current >"$WORK/current.txt"
status=0
while read -r name base_hash; do
  if [ -n "$ONLY" ] && [[ ",$ONLY," != *",$name,"* ]]; then continue; fi
  now=$(grep "^$name " "$WORK/current.txt" | cut -d' ' -f2-)
  if [ "$base_hash" = "$now" ] && [ "$now" != "FAILED" ]; then echo "identical  $name"
  else echo "DIFFERENT  $name (base $base_hash, now $now)"; status=1; fi
done <"$WORK/base.txt"
exit $status
