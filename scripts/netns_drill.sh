#!/usr/bin/env bash
# Multi-host drill on one machine: two network namespaces joined by a veth pair act as two hosts
# (addresses only on that pair: 10.213.<n>.1 and .2; no traffic leaves the namespaces). Open MPI
# starts one rank in each through an rsh agent that runs `ip netns exec` (with its own hostname,
# so Open MPI sees two nodes and talks TCP between them). Checks:
#   1. a 2-host data-parallel run gives the losses of 1 rank with the whole batch;
#   2. with host B's link brought down mid-run, the job fails within LOOM_COMM_TIMEOUT naming
#      the unreachable rank;
#   3. with the link back up, --resume auto finishes that run with exactly the parameters of
#      the uninterrupted 2-host run.
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
printf '%s slots=1\n%s slots=1\n' "$A" "$B" > "$WORK/hosts"

# Tiny byte-level data and model.
for i in $(seq 1 400); do echo "the quick brown fox jumps over the lazy dog, line $i."; done > "$WORK/text.txt"
"$LOOM" tokenize --tokenizer byte --input "$WORK/text.txt" --out_dir "$WORK/data" --val_fraction 0 >/dev/null 2>&1
cat > "$WORK/config.json" <<CFG
{"model": {"vocab_size": 257, "context_len": 64, "n_layer": 2, "n_head": 2, "d_model": 64},
 "train": {"data_dir": "$WORK/data", "batch_size": 4, "seq_len": 64, "max_steps": 40, "lr": 0.003,
           "initial_lr": 0.0003, "min_lr": 0.0003, "warmup_steps": 5, "eval_freq": 0, "save_freq": 5,
           "sample_freq": -1, "threads": 1}}
CFG

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
SUBNET="10.213.$NET.0/24"
# mpirun runs on host A; -x passes the variables to both hosts' ranks.
two_hosts() {  # two_hosts OUT_DIR [extra train flags...]
  local out=$1; shift
  ip netns exec "$A" mpirun --hostfile "$WORK/hosts" -np 2 --map-by node \
    --mca plm_rsh_agent "$WORK/agent" --mca oob_tcp_if_include "$SUBNET" \
    --mca btl tcp,self --mca btl_tcp_if_include "$SUBNET" \
    -x LOOM_COMM_TIMEOUT -x OMPI_ALLOW_RUN_AS_ROOT -x OMPI_ALLOW_RUN_AS_ROOT_CONFIRM \
    "$LOOM" train --config "$WORK/config.json" --out_dir "$out" "$@"
}
losses() { grep '"type":"train"' "$1/metrics.jsonl" | sed 's/.*"loss":\([^,]*\),.*/\1/'; }

echo "netns drill: hosts $A (10.213.$NET.1) and $B (10.213.$NET.2), one rank each"
ip netns exec "$A" mpirun --hostfile "$WORK/hosts" -np 2 --map-by node --mca plm_rsh_agent "$WORK/agent" \
  --mca oob_tcp_if_include "10.213.$NET.0/24" hostname > "$WORK/hostnames" 2>&1
grep -qx "$A" "$WORK/hostnames" && grep -qx "$B" "$WORK/hostnames" ||
  { cat "$WORK/hostnames"; echo "netns drill: FAIL: the ranks did not start on both hosts"; exit 1; }
export LOOM_COMM_TIMEOUT=5
"$LOOM" train --config "$WORK/config.json" --out_dir "$WORK/one" --batch_size 8 >/dev/null
two_hosts "$WORK/two" > "$WORK/two.log" 2>&1 || { cat "$WORK/two.log"; echo "netns drill: FAIL: 2-host run failed"; exit 1; }
grep -q "2 rank(s)" "$WORK/two.log" || { cat "$WORK/two.log"; echo "netns drill: FAIL: not 2 ranks"; exit 1; }
paste <(losses "$WORK/one") <(losses "$WORK/two") | awk '
  { d = $1 - $2; if (d < 0) d = -d; if (d > 1e-4 * ($1 < 0 ? -$1 : $1) + 1e-5) bad++; n++ }
  END { if (n != 40 || bad) { printf "netns drill: FAIL: %d of %d losses differ\n", bad, n; exit 1 }
        printf "netns drill: PASS: 2 hosts match 1 rank with the whole batch (%d losses)\n", n }'

# Link down mid-run.
two_hosts "$WORK/cut" --resume auto > "$WORK/cut.log" 2>&1 &
MPIRUN_PID=$!
for _ in $(seq 1 600); do
  [ -f "$WORK/cut/metrics.jsonl" ] && [ "$(grep -c '"type":"train"' "$WORK/cut/metrics.jsonl")" -ge 12 ] && break
  sleep 0.05
done
ip -n "$B" link set "$VB" down
T0=$(date +%s.%N)
for _ in $(seq 1 400); do
  grep -q "timed out" "$WORK/cut.log" && break
  sleep 0.05
done
T1=$(date +%s.%N)
kill -9 "$MPIRUN_PID" 2>/dev/null || true; wait "$MPIRUN_PID" 2>/dev/null || true; MPIRUN_PID=""
for ns in "$A" "$B"; do for p in $(ip netns pids "$ns"); do kill -9 "$p" 2>/dev/null || true; done; done
MSG=$(grep -m1 "timed out" "$WORK/cut.log" || true)
[ -n "$MSG" ] || { cat "$WORK/cut.log"; echo "netns drill: FAIL: no rank reported the lost link"; exit 1; }
echo "$MSG" | grep -Eq "rank [01]" || { echo "$MSG"; echo "netns drill: FAIL: the error names no rank"; exit 1; }
awk -v m="$MSG" -v a="$T0" -v b="$T1" 'BEGIN { printf "netns drill: PASS: link down -> \"%s\" after %.1f s\n", m, b - a }'

ip -n "$B" link set "$VB" up
two_hosts "$WORK/cut" --resume auto > "$WORK/resume.log" 2>&1 || { cat "$WORK/resume.log"; echo "netns drill: FAIL: resume failed"; exit 1; }
grep -m1 "resumed from" "$WORK/resume.log"
cmp "$WORK/two/step_000040/model.safetensors" "$WORK/cut/step_000040/model.safetensors" ||
  { echo "netns drill: FAIL: resumed parameters differ from the uninterrupted run's"; exit 1; }
echo "netns drill: PASS: resumed with --resume auto; parameters byte-equal to the uninterrupted 2-host run"
