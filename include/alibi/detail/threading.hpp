// Runs `task(unit)` for unit in [0, num_units) on up to `num_threads` threads.
//
// Units are claimed dynamically, but a unit's arithmetic never depends on which thread runs it, so the
// results are the same for any thread count. With OpenMP enabled in the calling TU the team comes from
// OpenMP's persistent pool; otherwise std::thread workers are started for the call (the calling thread
// works too). With one thread or one unit everything runs on the calling thread.
#include "alibi/detail/config.hpp"
// Per-target header: no #pragma once (Note [per-target headers] in detail/config.hpp).
#if (ALIBI_PASS == 0 && !defined(ALIBI_DETAIL_THREADING_HPP_0)) || \
    (ALIBI_PASS == 1 && !defined(ALIBI_DETAIL_THREADING_HPP_1)) || \
    (ALIBI_PASS == 2 && !defined(ALIBI_DETAIL_THREADING_HPP_2))
#if ALIBI_PASS == 0
#define ALIBI_DETAIL_THREADING_HPP_0
#elif ALIBI_PASS == 1
#define ALIBI_DETAIL_THREADING_HPP_1
#else
#define ALIBI_DETAIL_THREADING_HPP_2
#endif
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <thread>

#if defined(_OPENMP)
#include <omp.h>
#endif

#include "alibi/detail/buffer.hpp"

ALIBI_NAMESPACE_BEGIN
namespace detail {

inline int resolve_num_threads(int requested) {
  if (requested > 0) return requested;
#if defined(_OPENMP)
  return std::max(1, omp_get_max_threads());
#else
  return std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
#endif
}

// `make_worker()` is called once per participating thread and returns a callable taking a unit index,
// so each thread owns its scratch buffers.
template <class MakeWorker>
void parallel_for_units(std::int64_t num_units, int num_threads, MakeWorker&& make_worker) {
  if (num_units <= 0) return;
  const int threads = static_cast<int>(std::min<std::int64_t>(num_threads, num_units));
  if (threads <= 1) {
    auto worker = make_worker();
    for (std::int64_t unit = 0; unit < num_units; ++unit) worker(unit);
    return;
  }
  std::atomic<std::int64_t> next{0};
  auto drain = [&] {
    auto worker = make_worker();
    for (std::int64_t unit = next.fetch_add(1, std::memory_order_relaxed); unit < num_units;
         unit = next.fetch_add(1, std::memory_order_relaxed))
      worker(unit);
  };
#if defined(_OPENMP)
#pragma omp parallel num_threads(threads)
  drain();
#else
  Buffer<std::thread> helpers(static_cast<std::size_t>(threads - 1));
  for (std::thread& helper : helpers) helper = std::thread(drain);
  drain();
  for (auto& helper : helpers) helper.join();
#endif
}

}  // namespace detail
ALIBI_NAMESPACE_END
#endif  // per-target guard
