#pragma once
// Timing helpers shared by the benchmark families: a manual-time loop (so the counters and the reported
// time come from the same clock readings) and a cache of reference times that ratio counters divide by.
#include <algorithm>
#include <chrono>
#include <map>
#include <string>
#include <utility>

#include <benchmark/benchmark.h>

namespace alibi_bench {

using Clock = std::chrono::steady_clock;

inline double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

/// The benchmark loop with per-iteration wall-clock times of `call` (register with UseManualTime()), each
/// followed by one call of `baseline` timed apart (not part of the row's time). Returns the mean seconds
/// per call of `call` and leaves those of `baseline` in `baseline_seconds` (both 0 when the loop did not
/// run, e.g. after SkipWithError). Back to back in one loop, the two calls see the same state of a shared
/// machine, so their ratio does not carry the drift between two rows run minutes apart.
template <class Call, class Baseline>
double timed_loop_paired(benchmark::State& state, Call&& call, Baseline&& baseline, double& baseline_seconds) {
  double total = 0.0, baseline_total = 0.0;
  for (auto _ : state) {
    auto start = Clock::now();
    call();
    benchmark::ClobberMemory();
    const double elapsed = seconds_since(start);
    state.SetIterationTime(elapsed);
    total += elapsed;
    start = Clock::now();
    baseline();
    benchmark::ClobberMemory();
    baseline_total += seconds_since(start);
  }
  const double iterations = static_cast<double>(state.iterations());
  baseline_seconds = iterations > 0 ? baseline_total / iterations : 0.0;
  return iterations > 0 ? total / iterations : 0.0;
}

/// timed_loop_paired without a baseline.
template <class Call>
double timed_loop(benchmark::State& state, Call&& call) {
  double unused = 0.0;
  return timed_loop_paired(
      state, std::forward<Call>(call), [] {}, unused);
}

/// Fastest seconds per call seen for each reference key (baseline of a shape, 1-thread time, unskipped
/// time). Keeping the minimum over repetitions makes every ratio against it conservative.
inline std::map<std::string, double>& reference_times() {
  static std::map<std::string, double> times;
  return times;
}

inline void record_reference(const std::string& key, double seconds) {
  if (seconds <= 0.0) return;
  auto inserted = reference_times().emplace(key, seconds);
  if (!inserted.second) inserted.first->second = std::min(inserted.first->second, seconds);
}

/// The recorded time for key; when the benchmark that records it did not run (filtered out), times one
/// call of `measure_once` instead, after one untimed warm-up call if that call is short.
template <class Call>
double reference_seconds(const std::string& key, Call&& measure_once) {
  auto found = reference_times().find(key);
  if (found != reference_times().end()) return found->second;
  auto start = Clock::now();
  measure_once();
  double elapsed = seconds_since(start);
  if (elapsed < 1.0) {  // short enough to afford a second, warm run
    start = Clock::now();
    measure_once();
    elapsed = std::min(elapsed, seconds_since(start));
  }
  record_reference(key, elapsed);
  return elapsed;
}

}  // namespace alibi_bench
