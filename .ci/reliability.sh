#!/usr/bin/env bash
# Reliability checks of issue 5, called by .ci/run (or on its own: `bash .ci/reliability.sh` from anywhere
# in a clone, as root or with sudo). Steps:
#   1. reliability tests (64-bit indexing, concurrency, bad values, misaligned tensors, -fno-exceptions)
#   2. the same tests under AddressSanitizer + UndefinedBehaviorSanitizer
#   3. the concurrency (and indexing) tests under ThreadSanitizer, std::thread path (no -fopenmp)
#   4. valgrind memcheck of a reduced suite (scalar kernel, -O1 -g, no sanitizers), then of the same suite
#      with the scalar kernel compiled with the AVX2 flags at -O2 (GCC's loop vectoriser at work)
#   5. libFuzzer (ASan + UBSan) for about 60 s, starting from a copy of tests/fuzz/corpus
#   6. clang-tidy with the checked-in .clang-tidy, scalar and AVX2 (+ Eigen) instantiations
# Every step runs even when an earlier one failed; a summary follows, and the exit status is non-zero if
# any step failed. Build trees go to build/reliability-*; nothing is written into the sources.
#
# Environment: RELIABILITY_FUZZ_SECONDS (default 60), CMAKE_BUILD_PARALLEL_LEVEL (default 2).
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
readonly ROOT="$PWD"
export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-2}"
readonly FUZZ_SECONDS="${RELIABILITY_FUZZ_SECONDS:-60}"

banner() { printf '\n==== reliability: %s ====\n' "$*"; }

# --- dependencies (idempotent: installs only what is missing) ---------------------------------------
# clang + libclang-rt-14-dev: libFuzzer and the sanitizer runtimes; clang-tidy; valgrind; and what the
# test builds need (g++, cmake, make, GoogleTest).
packages=(g++ make cmake libgtest-dev clang libclang-rt-14-dev clang-tidy valgrind)
# shellcheck source=packages.sh
source .ci/packages.sh
install_missing_packages "${packages[@]}" || exit 1

# --- step runner ---------------------------------------------------------------------------------------
step_names=()
step_results=()
step_seconds=()
run_step() {  # run_step "name" function
  local name="$1" fn="$2" start status
  banner "$name"
  start=$SECONDS
  "$fn"
  status=$?
  step_names+=("$name")
  step_seconds+=($((SECONDS - start)))
  if ((status == 0)); then step_results+=("PASS"); else step_results+=("FAIL (status $status)"); fi
  return 0
}

# Configures and builds tests/reliability into build/<dir> with extra cmake arguments.
build_reliability() {  # build_reliability dir [cmake args...]
  local dir="build/$1"
  shift
  cmake -S tests/reliability -B "$dir" "$@" >/dev/null && cmake --build "$dir"
}

# --- 1. the tests, optimised ------------------------------------------------------------------------------
step_tests() {
  build_reliability reliability -DCMAKE_BUILD_TYPE=Release || return 1
  ctest --test-dir build/reliability --output-on-failure -j2
}

# --- 2. ASan + UBSan -------------------------------------------------------------------------------------
step_asan() {
  build_reliability reliability-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g" \
    -DCMAKE_CXX_FLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" \
    -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" || return 1
  ASAN_OPTIONS="detect_leaks=1:halt_on_error=1" UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
    ctest --test-dir build/reliability-asan --output-on-failure -j2
}

# --- 3. ThreadSanitizer ------------------------------------------------------------------------------------
# Without -fopenmp the library runs its workers on std::thread, which TSan instruments (libgomp is not).
step_tsan() {
  build_reliability reliability-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g" \
    -DCMAKE_CXX_FLAGS="-fsanitize=thread -fno-omit-frame-pointer" -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=thread" ||
    return 1
  TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1" \
    build/reliability-tsan/alibi_reliability_tests --gtest_filter='*Concurrency*:*Indexing*'
}

# --- 4. valgrind memcheck ------------------------------------------------------------------------------------
# The scalar kernel only (valgrind runs AVX2 too, but slowly), reduced sizes, no death tests (they exec a
# helper). Errors and definite/indirect leaks fail the step. ALIBI_SCRATCH_CACHE=0: every buffer is its own
# allocation (a reused, larger block would hide a read past the end; Note [scratch reuse]).
memcheck_suite() {  # memcheck_suite dir [cmake args...]: the scalar-only suite, built and run under valgrind
  local dir="$1"
  shift
  build_reliability "$dir" -DALIBI_RELIABILITY_AVX2=OFF "$@" || return 1
  ALIBI_RELIABILITY_QUICK=1 valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite,indirect \
    "build/$dir/alibi_reliability_tests" --gtest_filter='-NoExceptions.*'
}
step_memcheck() {
  memcheck_suite reliability-memcheck -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g" \
    -DCMAKE_CXX_FLAGS="-DALIBI_SCRATCH_CACHE=0"
}
# The scalar kernel built with -mavx2 -mfma -mf16c at -O2, as a program that dispatches or a test binary of
# several ISAs builds it: GCC 12's loop vectoriser once turned its loops into vector code reading past the
# packed V block (CHANGELOG, Fixed), which the -O1 build above cannot show.
step_memcheck_wide() {
  memcheck_suite reliability-memcheck-wide -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS_RELEASE="-O2 -g" \
    -DCMAKE_CXX_FLAGS="-mavx2 -mfma -mf16c -DALIBI_SCRATCH_CACHE=0"
}

# --- 5. libFuzzer ------------------------------------------------------------------------------------------
step_fuzz() {
  cmake -S tests/fuzz -B build/reliability-fuzz -DCMAKE_CXX_COMPILER=clang++ >/dev/null && cmake --build build/reliability-fuzz || return 1
  local corpus status
  corpus="$(mktemp -d)"  # the fuzzer adds inputs to its corpus: never to the repository's
  cp tests/fuzz/corpus/* "$corpus"/
  mkdir -p build/reliability-fuzz/artifacts
  build/reliability-fuzz/alibi_attention_fuzz -max_total_time="$FUZZ_SECONDS" -timeout=20 -rss_limit_mb=3072 \
    -print_final_stats=1 -artifact_prefix="$ROOT/build/reliability-fuzz/artifacts/" "$corpus" 2>&1 |
    grep -vE '^#[0-9]+[[:space:]]+(NEW|REDUCE)'  # keep the pulses, stats, summary and any finding
  status=${PIPESTATUS[0]}
  rm -rf "$corpus"
  if ((status != 0)); then echo "fuzz finding: input saved in build/reliability-fuzz/artifacts/" >&2; fi
  return "$status"
}

# --- 6. clang-tidy ---------------------------------------------------------------------------------------------
step_tidy() {
  local status=0 tu=tests/reliability/clang_tidy_tu.cpp
  echo "clang-tidy: scalar"
  clang-tidy --quiet "$tu" -- -std=c++17 -Iinclude || status=1
  local eigen=()
  if [[ -f /usr/include/eigen3/Eigen/Core ]]; then eigen=(-DALIBI_TIDY_EIGEN -isystem /usr/include/eigen3); fi
  echo "clang-tidy: avx2 (-mavx2 -mfma)${eigen:+ with alibi/eigen.hpp}"
  clang-tidy --quiet "$tu" -- -std=c++17 -Iinclude -mavx2 -mfma "${eigen[@]}" || status=1
  return "$status"
}

run_step "reliability tests (Release)" step_tests
run_step "reliability tests under ASan + UBSan" step_asan
run_step "concurrency + indexing tests under TSan" step_tsan
run_step "valgrind memcheck (reduced suite, scalar)" step_memcheck
run_step "valgrind memcheck (scalar built with AVX2 flags)" step_memcheck_wide
run_step "libFuzzer, ${FUZZ_SECONDS} s" step_fuzz
run_step "clang-tidy" step_tidy

banner "summary"
failed=0
for i in "${!step_names[@]}"; do
  printf '  %-48s %-18s %4d s\n' "${step_names[$i]}" "${step_results[$i]}" "${step_seconds[$i]}"
  [[ ${step_results[$i]} == PASS ]] || failed=1
done
if ((failed)); then
  echo "reliability: FAILED" >&2
  exit 1
fi
echo "reliability: all steps passed"
