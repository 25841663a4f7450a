#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/*_fuzz.cpp: a CMake project of its own, in build-fuzz) and
# runs each for SECONDS (default 60), nproc of them at a time, starting from the seed corpus in
# fuzz/corpus/<target>/ (inputs it finds go to build-fuzz/corpus/<target>/, not the repo).
# Prints execs and coverage per target; exits non-zero if any target crashed, leaked, hung
# (> 10 s on one input) or had a sanitizer report; its crash input and log stay in build-fuzz/out/.
# Usage: bash scripts/fuzz.sh [SECONDS] [TARGET...]     (CI: 60 s; longer runs: e.g. 600)
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${1:-60}
shift || true
BUILD_DIR=${FUZZ_BUILD_DIR:-build-fuzz}
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for f in fuzz/*_fuzz.cpp; do targets+=("$(basename "$f" .cpp)"); done
fi
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
cmake -S fuzz -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g" \
  -DCMAKE_CXX_COMPILER="${FUZZ_CXX:-$(command -v clang++-14 || command -v clang++)}" "${launcher[@]}" >/dev/null
cmake --build "$BUILD_DIR" -j"$(nproc)" $(printf -- '--target %s ' "${targets[@]}") >/dev/null
out="$BUILD_DIR/out"
mkdir -p "$out"
run_one() {  # target
  local t=$1 corpus="$BUILD_DIR/corpus/$1"
  mkdir -p "$corpus"
  cp -n fuzz/corpus/"$t"/* "$corpus"/ 2>/dev/null || true
  if ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
     "$BUILD_DIR/$t" "$corpus" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 \
       -max_len=65536 -print_final_stats=1 -artifact_prefix="$out/$t-" >"$out/$t.log" 2>&1; then
    echo ok >"$out/$t.status"
  else
    echo FAILED >"$out/$t.status"
  fi
}
export -f run_one
export BUILD_DIR SECONDS_EACH out
printf '%s\n' "${targets[@]}" | xargs -P "$(nproc)" -I{} bash -c 'run_one {}'
failed=0
printf '%-24s %-7s %12s %8s %8s\n' target result execs cov ft
for t in "${targets[@]}"; do
  status=$(cat "$out/$t.status")
  execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$out/$t.log" | grep -o '[0-9]*$' || echo "?")
  cov=$(grep -o 'cov: [0-9]*' "$out/$t.log" | tail -1 | grep -o '[0-9]*' || echo "?")
  ft=$(grep -o 'ft: [0-9]*' "$out/$t.log" | tail -1 | grep -o '[0-9]*' || echo "?")
  printf '%-24s %-7s %12s %8s %8s\n' "$t" "$status" "$execs" "$cov" "$ft"
  if [ "$status" != ok ]; then
    failed=1
    echo "---- $out/$t.log (tail) ----"
    tail -40 "$out/$t.log"
  fi
done
exit $failed
