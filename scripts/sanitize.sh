#!/usr/bin/env bash
# Sanitizer jobs (CI runs this after scripts/test.sh):
#   asan  build-asan: library + tests with AddressSanitizer + UndefinedBehaviorSanitizer (gcc,
#         CUDA off, -fno-sanitize-recover=all), running the unit and multi-process suites below;
#   tsan  build-tsan: ThreadSanitizer, running the comm, pipeline, data-parallel, ZeRO,
#         checkpoint and launcher suites.
# Every process (the test binary and each `loom` rank it starts) writes any report to
# <build>/sanitizer-reports/; the job fails if a test fails or any report was written.
# Usage: bash scripts/sanitize.sh [asan|tsan|all]   (default all)
set -euo pipefail
cd "$(dirname "$0")/.."
JOB=${1:-all}
# The test files (tests/<name>_test.cpp) each job builds and runs; override with the variables.
# asan: the unit tests of every module and the end-to-end runs of the main layouts.
ASAN_TESTS=${ASAN_TESTS:-json_input capacity checkpoint safetensors token_shard text_corpus window_dataset distributed_sampler tokenizer train_config gpt_config mesh model_shard gradient_buckets sharded_gradients comm_unit comm_failure pipeline_schedule pipeline_partition pipeline_runtime optim rng memory trace gpt layernorm linear train_cli data_parallel fault_tolerance zero2 pipeline_train_cli tensor_parallel_cli}
# tsan: threads and processes that share memory: comm, pipeline, data parallel, ZeRO, checkpoint,
# launcher (comm_unit holds LaunchEnvironment, fault_tolerance the launcher's restarts).
TSAN_TESTS=${TSAN_TESTS:-comm_unit comm_failure pipeline_runtime data_parallel zero2 sharded_gradients gradient_buckets checkpoint fault_tolerance}

build() {  # dir, sanitizer flags, test names
  local dir=$1 flags=$2 tests=$3 launcher=()
  command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g" \
    -DCMAKE_CXX_FLAGS="$flags -fno-sanitize-recover=all -fno-omit-frame-pointer" \
    -DCMAKE_EXE_LINKER_FLAGS="$flags" -DLOOM_WITH_CUDA=OFF \
    -DLOOM_TESTS="${tests// /;}" "${launcher[@]}" >/dev/null
  cmake --build "$dir" -j"$(nproc)"
}

run_tests() {  # dir
  local dir=$1 reports="$1/sanitizer-reports"
  rm -rf "$reports" && mkdir -p "$reports"
  local status=0
  ctest --test-dir "$dir" --output-on-failure -j"$(nproc)" || status=1
  if [ -n "$(ls -A "$reports")" ]; then
    echo "sanitizer reports in $reports:"
    for f in "$reports"/*; do echo "== $f"; head -60 "$f"; done
    status=1
  fi
  return $status
}

supp="$PWD/scripts/sanitize/lsan.supp"
if [ "$JOB" = asan ] || [ "$JOB" = all ]; then
  build build-asan "-fsanitize=address,undefined" "$ASAN_TESTS"
  reports="$PWD/build-asan/sanitizer-reports"
  ASAN_OPTIONS="halt_on_error=1:detect_leaks=1:log_path=$reports/asan" \
  LSAN_OPTIONS="suppressions=$supp" \
  UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$reports/ubsan" \
    run_tests build-asan
fi
if [ "$JOB" = tsan ] || [ "$JOB" = all ]; then
  build build-tsan "-fsanitize=thread" "$TSAN_TESTS"
  reports="$PWD/build-tsan/sanitizer-reports"
  # One OpenMP/OpenBLAS thread: libgomp is not built with TSan, so races inside its runtime would
  # be reported falsely; Loom's own threads (checkpoint writer, launcher, comm) stay.
  OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 \
  TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:log_path=$reports/tsan" \
    run_tests build-tsan
fi
