#pragma once
// Timing helpers shared by the benchmark families: a manual-time loop (so the counters and the reported
// time come from the same clock readings) and a cache of reference times that ratio counters divide by.
#include <algorithm>
#include <chrono>
#include <map>
#include <string>

#include <benchmark/benchmark.h>

namespace alibi_bench {

using Clock = std::chrono::steady_clock;

inline double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

/// The benchmark loop with per-iteration wall-clock times (register with UseManualTime()); returns the
/// mean seconds per call, 0 when the loop did not run (e.g. after SkipWithError).
template <class Call>
double timed_loop(benchmark::State& state, Call&& call) {
  double total = 0.0;
  for (auto _ : state) {
    const auto start = Clock::now();
    call();
    benchmark::ClobberMemory();
    const double elapsed = seconds_since(start);
    state.SetIterationTime(elapsed);
    total += elapsed;
  }
  return state.iterations() > 0 ? total / static_cast<double>(state.iterations()) : 0.0;
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
