#!/usr/bin/env bash
# Chaos drills: each trial runs a training job under `--resume auto --max_restarts 3`, waits for a
# random step, then hits a random rank with a random fault:
#   kill   SIGKILL: the launcher names the rank, restarts every rank from the last checkpoint;
#   stop   SIGSTOP: the peers name it within LOOM_COMM_TIMEOUT (3 s here), then as kill;
#   term   SIGTERM (preemption): every rank saves the same step and the job exits 0; the trial
#          then starts the job again (as a scheduler would) and it resumes.
# A trial passes when the job ends with exit 0 and its final model.safetensors is byte-identical
# to an undisturbed run of the same layout. Prints one row per layout: trials, recovered (exit 0),
# identical, and the mean recovery seconds (fault to the first step trained after it).
#
#   bash scripts/chaos.sh                       # 3 trials per layout
#   bash scripts/chaos.sh --trials 20 --layouts dp2,tp2
#   bash scripts/chaos.sh --trials 1 --seed 7   # CI: one short trial per layout
#   bash scripts/chaos.sh --faults stop,term     # only these faults (default kill,stop,term)
# Exit status 1 if any trial did not recover or was not identical. Logs: $CHAOS_DIR (printed).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BIN=${LOOM:-$ROOT/build/loom}
TRIALS=3 ONLY="" SEED=$RANDOM STEPS=60 FAULTS=kill,stop,term
while [ $# -gt 0 ]; do
  case "$1" in
    --trials) TRIALS=$2; shift 2 ;;
    --layouts) ONLY=$2; shift 2 ;;
    --seed) SEED=$2; shift 2 ;;
    --steps) STEPS=$2; shift 2 ;;
    --faults) FAULTS=$2; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "chaos: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
[[ "$TRIALS" =~ ^[1-9][0-9]*$ ]] || { echo "chaos: --trials must be a positive integer, got $TRIALS" >&2; exit 2; }
[[ "$STEPS" =~ ^[0-9]+$ ]] && [ "$STEPS" -ge 24 ] || { echo "chaos: --steps must be >= 24, got $STEPS" >&2; exit 2; }
for f in ${FAULTS//,/ }; do
  case $f in kill|stop|term) ;; *) echo "chaos: --faults: unknown fault $f (expected kill, stop, term)" >&2; exit 2 ;; esac
done
[ -x "$BIN" ] || { echo "chaos: $BIN not built (cmake --build build)" >&2; exit 2; }
RANDOM=$SEED

# name | flags after the common ones
LAYOUTS=(
  "dp2|--nproc 2"
  "tp2|--nproc 2 --tp 2"
  "pp2-1f1b|--nproc 2 --pp 2 --schedule 1f1b --micro_batches 4"
  "pp2-zb1p|--nproc 2 --pp 2 --schedule zb1p --micro_batches 4"
  "pp2xtp2|--nproc 4 --pp 2 --tp 2 --micro_batches 4"
  "dp2-zero2|--nproc 2 --zero 2"
)

WORK=${CHAOS_DIR:-$(mktemp -d /tmp/loom-chaos-XXXXXX)}
mkdir -p "$WORK"
DATA=$WORK/data
if [ ! -f "$DATA/meta.json" ]; then
  "$BIN" tokenize --input /usr/share/games/fortunes --out_dir "$DATA" --tokenizer byte \
    --val_fraction 0.05 >/dev/null 2>&1
fi
final=$(printf 'step_%06d' "$STEPS")

# train OUT FLAGS...: the job, in the foreground, its output appended to OUT.log
train() {
  local out=$1; shift
  # shellcheck disable=SC2068
  OMP_NUM_THREADS=1 LOOM_COMM_TIMEOUT=3 timeout 600 "$BIN" train --config "$ROOT/configs/tiny.json" \
    --n_layer 4 --n_head 4 --vocab_size 257 --data_dir "$DATA" --out_dir "$out" --max_steps "$STEPS" \
    --eval_freq 0 --sample_freq -1 --save_freq 4 --threads 1 --warmup_steps 5 --oversubscribe $@ \
    >>"$out.log" 2>&1
}

# Every process below PID.
descendants() {
  local p
  for p in $(pgrep -P "$1"); do echo "$p"; descendants "$p"; done
}

# The pid of world rank RANK of the job below JOB (LOOM_RANK in its environment).
rank_pid() {
  local job=$1 rank=$2 pid
  for pid in $(descendants "$job"); do
    if tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | grep -qx "LOOM_RANK=$rank"; then echo "$pid"; return; fi
  done
}

# Latest step in OUT's metrics log (0 before any).
last_step() {
  local f=$1/metrics.jsonl s
  s=$(grep '"type":"train"' "$f" 2>/dev/null | tail -1 | grep -o '"step":[0-9]*' | grep -o '[0-9]*$' || true)
  echo "${s:-0}"
}

# Lines of OUT.log that are step lines.
step_lines() { grep -c '^step [0-9]*/' "$1.log" 2>/dev/null || true; }

status=0
printf '%-12s %7s %10s %10s %14s   %s\n' layout trials recovered identical "recovery (s)" faults
for entry in "${LAYOUTS[@]}"; do
  name=${entry%%|*} flags=${entry#*|}
  if [ -n "$ONLY" ] && [[ ",$ONLY," != *",$name,"* ]]; then continue; fi
  nproc=$(sed -n 's/.*--nproc \([0-9]*\).*/\1/p' <<<"$flags")
  ref=$WORK/$name/reference
  rm -rf "$ref" "$ref.log"; mkdir -p "$WORK/$name"
  # shellcheck disable=SC2086
  if ! train "$ref" $flags; then
    echo "$name: the undisturbed run failed (log: $ref.log)"; status=1; continue
  fi
  want=$(sha256sum "$ref/$final/model.safetensors" | cut -d' ' -f1)
  recovered=0 identical=0 recovery_sum=0 recovery_n=0 faults=""
  for trial in $(seq 1 "$TRIALS"); do
    out=$WORK/$name/trial$trial
    rm -rf "$out" "$out.log"
    IFS=, read -r -a fault_kinds <<<"$FAULTS"
    fault=${fault_kinds[$((RANDOM % ${#fault_kinds[@]}))]}
    victim=$((RANDOM % nproc))
    at=$((6 + RANDOM % (STEPS / 2 - 6)))
    faults+="$fault@$at:r$victim "
    # shellcheck disable=SC2086
    ( train "$out" $flags --resume auto --max_restarts 3 ) &
    job=$!
    deadline=$((SECONDS + 300))
    while [ "$(last_step "$out")" -lt "$at" ] && kill -0 "$job" 2>/dev/null && [ $SECONDS -lt $deadline ]; do
      sleep 0.05
    done
    pid=$(rank_pid "$job" "$victim")
    before=$(step_lines "$out")
    t0=$(date +%s.%N)
    if [ -n "$pid" ]; then
      case $fault in
        kill) kill -KILL "$pid" ;;
        stop) kill -STOP "$pid" ;;
        term) kill -TERM "$pid" ;;
      esac
    else
      faults+="(missed: the job had ended) "
    fi
    # Recovery: the first step line the job prints after the fault's restart (or re-launch).
    t_back=""
    while kill -0 "$job" 2>/dev/null; do
      if [ -z "$t_back" ] && grep -q '^restart [0-9]*:' "$out.log" && [ "$(step_lines "$out")" -gt "$before" ]; then
        t_back=$(date +%s.%N)
      fi
      sleep 0.05
    done
    rc=0; wait "$job" || rc=$?
    if [ "$rc" = 0 ] && [ ! -f "$out/$final/model.safetensors" ]; then
      # Preempted: saved and exited 0 before the end; start it again, as a scheduler would.
      before=$(step_lines "$out")
      # shellcheck disable=SC2086
      ( train "$out" $flags --resume auto --max_restarts 3 ) & job=$!
      while kill -0 "$job" 2>/dev/null; do
        if [ -z "$t_back" ] && [ "$(step_lines "$out")" -gt "$before" ]; then t_back=$(date +%s.%N); fi
        sleep 0.05
      done
      rc=0; wait "$job" || rc=$?
    fi
    if [ "$rc" = 0 ] && [ -f "$out/$final/model.safetensors" ]; then
      recovered=$((recovered + 1))
      got=$(sha256sum "$out/$final/model.safetensors" | cut -d' ' -f1)
      if [ "$got" = "$want" ]; then identical=$((identical + 1)); else
        echo "$name trial $trial ($fault at step $at, rank $victim): final model differs (log: $out.log)"; fi
    else
      echo "$name trial $trial ($fault at step $at, rank $victim): exit $rc (log: $out.log)"
    fi
    if [ -n "$t_back" ]; then
      recovery_sum=$(awk -v s="$recovery_sum" -v a="$t_back" -v b="$t0" 'BEGIN { print s + a - b }')
      recovery_n=$((recovery_n + 1))
    fi
  done
  mean=$(awk -v s="$recovery_sum" -v n="$recovery_n" 'BEGIN { if (n > 0) printf "%.2f", s / n; else print "-" }')
  printf '%-12s %7d %10d %10d %14s   %s\n' "$name" "$TRIALS" "$recovered" "$identical" "$mean" "$faults"
  [ "$recovered" = "$TRIALS" ] && [ "$identical" = "$TRIALS" ] || status=1
done
echo "logs: $WORK"
exit $status
