#!/usr/bin/env bash
# Sanitizer jobs (.ci/run runs `asan` and then `tsan` after the README's test command):
#   asan  build-asan: library, `loom` and tests with AddressSanitizer + UndefinedBehaviorSanitizer,
#         running the unit and multi-process tests of tests/CMakeLists.txt's LOOM_TESTS_asan;
#   tsan  build-tsan: ThreadSanitizer, running LOOM_TESTS_tsan (comm, pipeline, data parallel,
#         ZeRO, checkpoint, launcher).
# Both build with clang at -O1 (about twice as fast to build as g++ here), CUDA off, only the
# targets the tests need, and the library modules as unity builds (16 files per translation unit:
# the headers are parsed and the inline code compiled once per batch instead of once per file).
# Every process (the test binary and each `loom` rank it starts) writes any report to
# <build>/sanitizer-reports/; the job fails if a test fails or any report was written (UBSan
# halts on its first report, so it also fails the test that caused it). LSan does not print its
# "Suppressions used" summary (print_suppressions=0): such a file is not a report.
# Usage: bash scripts/sanitize.sh [asan|tsan|all]   (default all)
set -euo pipefail
cd "$(dirname "$0")/.."
JOB=${1:-all}
CXX_SAN=${SANITIZE_CXX:-$(command -v clang++-14 || command -v clang++)}
CC_SAN=${SANITIZE_CC:-$(command -v clang-14 || command -v clang)}

build() {  # dir, sanitizers, test set
  local dir=$1 launcher=()
  command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
  local start=$SECONDS
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -gline-tables-only" \
    -DCMAKE_CXX_COMPILER="$CXX_SAN" -DCMAKE_C_COMPILER="$CC_SAN" \
    -DLOOM_SANITIZE="$2" -DLOOM_TESTS="$3" -DLOOM_WITH_CUDA=OFF \
    -DCMAKE_UNITY_BUILD=ON -DCMAKE_UNITY_BUILD_BATCH_SIZE=16 "${launcher[@]}" >/dev/null
  cmake --build "$dir" -j"$(nproc)" --target loom_tests
  echo "$dir: built in $((SECONDS - start)) s"
}

run_tests() {  # dir
  local dir=$1 reports="$1/sanitizer-reports" status=0 start=$SECONDS
  rm -rf "$reports" && mkdir -p "$reports"
  ctest --test-dir "$dir" --output-on-failure -j"$(nproc)" || status=1
  if [ -n "$(ls -A "$reports")" ]; then
    echo "sanitizer reports in $reports:"
    for f in "$reports"/*; do echo "== $f"; head -60 "$f"; done
    status=1
  fi
  echo "$dir: tests ran in $((SECONDS - start)) s"
  return $status
}

status=0
if [ "$JOB" = asan ] || [ "$JOB" = all ]; then
  build build-asan address,undefined asan
  reports="$PWD/build-asan/sanitizer-reports"
  ASAN_OPTIONS="halt_on_error=1:detect_leaks=1:log_path=$reports/asan" \
  LSAN_OPTIONS="suppressions=$PWD/scripts/sanitize/lsan.supp:print_suppressions=0" \
  UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$reports/ubsan" \
    run_tests build-asan || status=1
fi
if [ "$JOB" = tsan ] || [ "$JOB" = all ]; then
  build build-tsan thread tsan
  reports="$PWD/build-tsan/sanitizer-reports"
  # One OpenMP/OpenBLAS thread: the OpenMP runtime is not built with TSan, so its own
  # synchronisation is invisible to it and would be reported as races; Loom's own threads
  # (checkpoint writer, launcher, comm progress and timeouts) all stay.
  OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 \
  TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$PWD/scripts/sanitize/tsan.supp:log_path=$reports/tsan" \
    run_tests build-tsan || status=1
fi
exit $status
