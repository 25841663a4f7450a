#!/usr/bin/env bash
# Multi-host drill on one machine: two network namespaces joined by a veth pair act as two hosts
# (addresses only on that pair: 10.213.<n>.1 and .2; no traffic leaves the namespaces). Open MPI
# starts two ranks in each through an rsh agent that runs `ip netns exec` (with its own hostname,
# so Open MPI sees two nodes and talks TCP between them; Loom sees two hosts: shared memory inside
# each, MPI across). Checks:
#   1. dp 4 (ranks 0,1 on host A, 2,3 on B) gives the losses of 1 rank with the whole batch;
#   2. dp 2 x tp 2 with the ranks dealt round-robin (--map-by node: 0,2 on A, 1,3 on B; the mesh
#      reorders them so each tp group is one host) gives them too;
#   3. a rank of host A, then one of host B, killed mid-run: the job fails within
#      LOOM_COMM_TIMEOUT, its output naming the rank and its host;
#   4. with host B's link brought down mid-run, the job fails within LOOM_COMM_TIMEOUT naming
#      the unreachable rank;
#   5. with the link back up, --resume auto finishes that run with exactly the parameters of
#      the uninterrupted dp 4 run.
# Every wait is bounded by wall-clock deadlines (not counts of sleeps), and one that runs out
# says what it waited for.
# Needs root (or CAP_NET_ADMIN + CAP_SYS_ADMIN), iproute2, Open MPI. Exit 77: cannot make the
# namespaces here (the test skips). Everything it creates is removed on exit.
# Usage: bash scripts/netns_drill.sh     (LOOM_BIN=path/to/loom to test another build)
set -euo pipefail
cd "$(dirname "$0")/.."
LOOM=$(realpath "${LOOM_BIN:-${BUILD_DIR:-build}/loom}")
[ -x "$LOOM" ] || { echo "netns drill: $LOOM not found (build first)" >&2; exit 1; }
command -v mpirun >/dev/null || { echo "netns drill: skip: mpirun not found"; exit 77; }
command -v ip >/dev/null || { echo "netns drill: skip: ip (iproute2) not found"; exit 77; }

ID=$$
NET=$((ID % 200 + 20))                 # 10.213.NET.0/24, per run
A=loomA$ID B=loomB$ID                  # namespaces = host names
VA=lva$ID VB=lvb$ID                    # the veth pair (names <= 15 characters)
WORK=$(mktemp -d /tmp/loom-netns-XXXXXX)
MPIRUN_PID=""

cleanup() {
  set +e
  [ -n "$MPIRUN_PID" ] && kill -9 "$MPIRUN_PID" 2>/dev/null
  for ns in "$A" "$B"; do
    for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
    ip netns del "$ns" 2>/dev/null
  done
  ip link del "$VA" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

if ! ip netns add "$A" 2>/dev/null; then
  echo "netns drill: skip: cannot create network namespaces here (needs root / CAP_SYS_ADMIN)"
  exit 77
fi
ip netns add "$B"
ip link add "$VA" type veth peer name "$VB"
ip link set "$VA" netns "$A"
ip link set "$VB" netns "$B"
ip -n "$A" addr add "10.213.$NET.1/24" dev "$VA"
ip -n "$B" addr add "10.213.$NET.2/24" dev "$VB"
for ns in "$A" "$B"; do ip -n "$ns" link set lo up; done
ip -n "$A" link set "$VA" up
ip -n "$B" link set "$VB" up

# The rsh agent: `agent [options] HOST COMMAND...` runs COMMAND in namespace HOST, with HOST as
# its hostname (a UTS namespace of its own), as ssh would on a real host.
cat > "$WORK/agent" <<AGENT
#!/bin/sh
while [ "\${1#-}" != "\$1" ]; do shift; done
host=\$1; shift
exec ip netns exec "\$host" unshare --uts sh -c "hostname \$host; \$*"
AGENT
chmod +x "$WORK/agent"
printf '%s slots=2\n%s slots=2\n' "$A" "$B" > "$WORK/hosts"

# Tiny byte-level data and model.
for i in $(seq 1 400); do echo "the quick brown fox jumps over the lazy dog, line $i."; done > "$WORK/text.txt"
"$LOOM" tokenize --tokenizer byte --input "$WORK/text.txt" --out_dir "$WORK/data" --val_fraction 0 >/dev/null 2>&1
cat > "$WORK/config.json" <<CFG
{"model": {"vocab_size": 257, "context_len": 64, "n_layer": 2, "n_head": 2, "d_model": 64},
 "train": {"data_dir": "$WORK/data", "batch_size": 2, "seq_len": 64, "max_steps": 24, "lr": 0.003,
           "initial_lr": 0.0003, "min_lr": 0.0003, "warmup_steps": 5, "eval_freq": 0, "save_freq": 5,
           "sample_freq": -1, "threads": 1}}
CFG

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
SUBNET="10.213.$NET.0/24"
# mpirun runs on host A; -x passes the variables to both hosts' ranks.
four_ranks() {  # four_ranks MAP_BY OUT_DIR [extra train flags...]   (slot: 0,1 on A; node: 0,2 on A)
  local map=$1 out=$2; shift 2
  ip netns exec "$A" mpirun --hostfile "$WORK/hosts" -np 4 --map-by "$map" \
    --mca plm_rsh_agent "$WORK/agent" --mca oob_tcp_if_include "$SUBNET" \
    --mca btl tcp,self --mca btl_tcp_if_include "$SUBNET" \
    -x LOOM_COMM_TIMEOUT -x OMPI_ALLOW_RUN_AS_ROOT -x OMPI_ALLOW_RUN_AS_ROOT_CONFIRM \
    "$LOOM" train --config "$WORK/config.json" --out_dir "$out" "$@"
}
losses() { grep '"type":"train"' "$1/metrics.jsonl" | sed 's/.*"loss":\([^,]*\),.*/\1/'; }
steps_done() { [ -f "$1/metrics.jsonl" ] || { echo 0; return; }; grep -c '"type":"train"' "$1/metrics.jsonl" || true; }
has_steps() { [ "$(steps_done "$1")" -ge "$2" ]; }  # has_steps RUN_DIR N
now() { date +%s.%N; }
# wait_until SECONDS WHAT COMMAND...: polls COMMAND until it succeeds; false (saying so) when
# SECONDS of wall-clock time pass first.
wait_until() {
  local limit=$1 what=$2; shift 2
  local end; end=$(awk -v t="$(now)" -v l="$limit" 'BEGIN { printf "%.3f", t + l }')
  until "$@"; do
    if awk -v t="$(now)" -v e="$end" 'BEGIN { exit !(t > e) }'; then
      echo "netns drill: waited ${limit} s for $what"; return 1
    fi
    sleep 0.1
  done
}
# The pid of world rank R (its OMPI_COMM_WORLD_RANK) in namespace NS.
rank_pid() {  # rank_pid NS R
  local p
  for p in $(ip netns pids "$1"); do
    [ "$(readlink /proc/$p/exe 2>/dev/null)" = "$LOOM" ] &&
      tr '\0' '\n' < /proc/$p/environ 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$2" &&
      { echo "$p"; return 0; }
  done
  return 1
}
kill_namespace_procs() { for ns in "$A" "$B"; do for p in $(ip netns pids "$ns"); do kill -9 "$p" 2>/dev/null || true; done; done; }
stop_job() {
  kill -9 "$MPIRUN_PID" 2>/dev/null || true; wait "$MPIRUN_PID" 2>/dev/null || true; MPIRUN_PID=""
  kill_namespace_procs
}
matches_one_rank() {  # matches_one_rank RUN_DIR NAME
  paste <(losses "$WORK/one") <(losses "$1") | awk -v name="$2" '
    { d = $1 - $2; if (d < 0) d = -d; if (d > 1e-4 * ($1 < 0 ? -$1 : $1) + 1e-5) bad++; n++ }
    END { if (n != 24 || bad) { printf "netns drill: FAIL: %s: %d of %d losses differ\n", name, bad, n; exit 1 }
          printf "netns drill: PASS: %s on 2 hosts x 2 ranks matches 1 rank with the whole batch (%d losses)\n", name, n }'
}

echo "netns drill: hosts $A (10.213.$NET.1) and $B (10.213.$NET.2), two ranks each"
ip netns exec "$A" mpirun --hostfile "$WORK/hosts" -np 4 --mca plm_rsh_agent "$WORK/agent" \
  --mca oob_tcp_if_include "10.213.$NET.0/24" hostname > "$WORK/hostnames" 2>&1
[ "$(grep -cx "$A" "$WORK/hostnames")" = 2 ] && [ "$(grep -cx "$B" "$WORK/hostnames")" = 2 ] ||
  { cat "$WORK/hostnames"; echo "netns drill: FAIL: the ranks did not start two on each host"; exit 1; }
export LOOM_COMM_TIMEOUT=5
"$LOOM" train --config "$WORK/config.json" --out_dir "$WORK/one" --batch_size 8 >/dev/null
four_ranks slot "$WORK/dp4" > "$WORK/dp4.log" 2>&1 || { cat "$WORK/dp4.log"; echo "netns drill: FAIL: dp 4 run failed"; exit 1; }
grep -q "comm: 4 ranks on 2 hosts, hierarchical" "$WORK/dp4.log" || { cat "$WORK/dp4.log"; echo "netns drill: FAIL: not 4 ranks on 2 hosts, hierarchical"; exit 1; }
matches_one_rank "$WORK/dp4" "dp 4"
four_ranks node "$WORK/tp" --tp 2 --batch_size 4 > "$WORK/tp.log" 2>&1 || { cat "$WORK/tp.log"; echo "netns drill: FAIL: dp 2 x tp 2 run failed"; exit 1; }
matches_one_rank "$WORK/tp" "dp 2 x tp 2 (ranks dealt round-robin)"

# A killed rank of either host (slot map: ranks 0,1 on A, 2,3 on B).
for victim in "1 $A" "2 $B"; do
  set -- $victim; V=$1 HOST=$2
  four_ranks slot "$WORK/kill$V" --max_steps 100000 > "$WORK/kill$V.log" 2>&1 &
  MPIRUN_PID=$!
  wait_until 120 "the run to reach step 3" has_steps "$WORK/kill$V" 3 ||
    { stop_job; cat "$WORK/kill$V.log"; echo "netns drill: FAIL: no progress before the kill"; exit 1; }
  PID=$(rank_pid "$HOST" "$V") || { stop_job; echo "netns drill: FAIL: rank $V not found on $HOST"; exit 1; }
  kill -9 "$PID"
  T0=$(now)
  NAMED="rank $V on host '$HOST'|rank $V with PID [0-9]+ on node $HOST"
  wait_until $((LOOM_COMM_TIMEOUT * 3)) "an error naming rank $V and its host" grep -Eq "$NAMED" "$WORK/kill$V.log" ||
    { stop_job; cat "$WORK/kill$V.log"; echo "netns drill: FAIL: the killed rank $V was not named with its host"; exit 1; }
  T1=$(now)
  stop_job
  MSG=$(grep -Eo -m1 ".{0,60}($NAMED).{0,20}" "$WORK/kill$V.log")
  awk -v m="$MSG" -v a="$T0" -v b="$T1" -v v="$V" 'BEGIN { printf "netns drill: PASS: rank %s killed -> \"%s\" after %.1f s\n", v, m, b - a }'
done

# Link down mid-run.
four_ranks slot "$WORK/cut" --resume auto > "$WORK/cut.log" 2>&1 &
MPIRUN_PID=$!
wait_until 120 "the run to reach step 8 (a checkpoint at 5)" has_steps "$WORK/cut" 8 ||
  { stop_job; cat "$WORK/cut.log"; echo "netns drill: FAIL: no progress before the cut"; exit 1; }
ip -n "$B" link set "$VB" down
T0=$(now)
wait_until $((LOOM_COMM_TIMEOUT * 4)) "a rank to report the lost link" grep -q "timed out" "$WORK/cut.log" || true
T1=$(now)
stop_job
MSG=$(grep -m1 "timed out" "$WORK/cut.log" || true)
[ -n "$MSG" ] || { cat "$WORK/cut.log"; echo "netns drill: FAIL: no rank reported the lost link"; exit 1; }
echo "$MSG" | grep -Eq "rank [0-3]" || { echo "$MSG"; echo "netns drill: FAIL: the error names no rank"; exit 1; }
awk -v m="$MSG" -v a="$T0" -v b="$T1" 'BEGIN { printf "netns drill: PASS: link down -> \"%s\" after %.1f s\n", m, b - a }'

ip -n "$B" link set "$VB" up
four_ranks slot "$WORK/cut" --resume auto > "$WORK/resume.log" 2>&1 || { cat "$WORK/resume.log"; echo "netns drill: FAIL: resume failed"; exit 1; }
grep -m1 "resumed from" "$WORK/resume.log"
cmp "$WORK/dp4/step_000024/model.safetensors" "$WORK/cut/step_000024/model.safetensors" ||
  { echo "netns drill: FAIL: resumed parameters differ from the uninterrupted dp 4 run's"; exit 1; }
echo "netns drill: PASS: resumed with --resume auto; parameters byte-equal to the uninterrupted dp 4 run"
