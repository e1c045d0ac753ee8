// Ragged batches and paged K/V caches: alibi::attention_varlen and alibi::attention_paged land here. Each
// sequence is the dense problem it would be on its own (batch 1, its queries the last positions of its
// keys), planned exactly as a dense call plans it, so its rows get the bits of that call; the units of
// all sequences share one thread team, the most expensive sequences first (those that run on narrower
// vectors, Note [narrower vectors] in kernels/plan.hpp, on a team before the others).
#include "alibi/detail/config.hpp"
// Per-target header: no #pragma once (Note [per-target headers] in detail/config.hpp).
#if (ALIBI_PASS == 0 && !defined(ALIBI_KERNELS_SERVING_CALL_HPP_0)) || \
    (ALIBI_PASS == 1 && !defined(ALIBI_KERNELS_SERVING_CALL_HPP_1)) || \
    (ALIBI_PASS == 2 && !defined(ALIBI_KERNELS_SERVING_CALL_HPP_2))
#if ALIBI_PASS == 0
#define ALIBI_KERNELS_SERVING_CALL_HPP_0
#elif ALIBI_PASS == 1
#define ALIBI_KERNELS_SERVING_CALL_HPP_1
#else
#define ALIBI_KERNELS_SERVING_CALL_HPP_2
#endif
#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <utility>

#include "alibi/detail/buffer.hpp"
#include "alibi/detail/problem.hpp"
#include "alibi/detail/validate.hpp"
#include "alibi/isa/ops.hpp"
#include "alibi/kernels/attention_call.hpp"
#include "alibi/kernels/elements.hpp"
#include "alibi/kernels/plan.hpp"
#include "alibi/types.hpp"

ALIBI_NAMESPACE_BEGIN
namespace kernels {

// Runs the sequences problems[which[0..count)] on one thread team, the most expensive first.
template <class Isa, class KV>
void run_sequences(const detail::Problem* problems, const std::int64_t* which, std::int64_t count) {
  if (count == 0) return;
  detail::Buffer<PreparedProblem<Isa>> prepared(static_cast<std::size_t>(count));
  detail::Buffer<std::int64_t> order(static_cast<std::size_t>(count));
  double total_cost = 0.0;
  for (std::int64_t s = 0; s < count; ++s) {
    PreparedProblem<Isa>& prep = prepared[static_cast<std::size_t>(s)];
    prep.pr = problems[which[s]];
    prep.sequences = count;
    prepare_problem<Isa, KV>(prep);
    total_cost += prep.cost;
    order[static_cast<std::size_t>(s)] = s;
  }
  // Most expensive first: a stable bottom-up merge sort by hand (std::sort or std::stable_sort would
  // instantiate helpers shared by every ISA's code, Note [ABI namespace]).
  const auto cost_of = [&](std::int64_t seq) { return prepared[static_cast<std::size_t>(seq)].cost; };
  detail::Buffer<std::int64_t> spare(static_cast<std::size_t>(count));
  std::int64_t* from = order.data();
  std::int64_t* to = spare.data();
  for (std::int64_t width = 1; width < count; width *= 2) {
    for (std::int64_t lo = 0; lo < count; lo += 2 * width) {
      const std::int64_t mid = std::min(count, lo + width), hi = std::min(count, lo + 2 * width);
      std::int64_t a = lo, b = mid, at = lo;
      while (a < mid && b < hi) to[at++] = cost_of(from[b]) > cost_of(from[a]) ? from[b++] : from[a++];
      while (a < mid) to[at++] = from[a++];
      while (b < hi) to[at++] = from[b++];
    }
    std::swap(from, to);
  }
  run_problems<Isa, KV>(prepared.data(), from, count,
                        Plan<Isa>::threads_for(total_cost, problems[which[0]].num_threads));
}

// `pages` null: packed K/V (attention_varlen); else the paged cache (attention_paged).
template <class Isa, class KV>
void attention_seq_batch(const char* fn, const float* q, const KV* k, const KV* v, float* out, const SeqBatch& batch,
                         const AttentionOptions& options, const PagedKV<KV>* pages) {
  static_assert(is_kv_element<KV>::value, "alibi: K/V elements must be float, bfloat16 or float16");
  detail::Buffer<float> default_slopes;
  detail::Buffer<detail::Problem> problems;
  detail::validate_seq_batch(fn, q, k, v, out, batch, options, pages, default_slopes, problems);
  const std::int64_t count = batch.num_seqs;
  if (count == 0) return;
  // Sequences that run faster on half-width vectors (Note [narrower vectors] in kernels/plan.hpp) go on a
  // team of their own, first; the others after them. Each sequence's bits are its own plan's either way.
  // The choice is made before the teams exist, so it sees the batch's sequence count where each team then
  // plans with its own (which kv heads share a unit, Note [decode across threads]: speed only).
  detail::Buffer<std::int64_t> narrower(static_cast<std::size_t>(count)), full_width(static_cast<std::size_t>(count));
  std::int64_t narrower_count = 0, full_width_count = 0;
  for (std::int64_t s = 0; s < count; ++s) {
    if (Plan<Isa>::prefers_narrower(problems[static_cast<std::size_t>(s)], static_cast<int>(sizeof(KV)), count))
      narrower[static_cast<std::size_t>(narrower_count++)] = s;
    else
      full_width[static_cast<std::size_t>(full_width_count++)] = s;
  }
  using Narrower = typename simd::Ops<Isa>::narrower;
  if constexpr (!std::is_same<Narrower, Isa>::value)
    run_sequences<Narrower, KV>(problems.data(), narrower.data(), narrower_count);
  run_sequences<Isa, KV>(problems.data(), full_width.data(), full_width_count);
}

template <class Isa, class KV>
void attention_varlen(const float* q, const KV* k, const KV* v, float* out, const SeqBatch& batch,
                      const AttentionOptions& options) {
  attention_seq_batch<Isa, KV>("attention_varlen", q, k, v, out, batch, options, nullptr);
}

template <class Isa, class KV>
void attention_paged(const float* q, const PagedKV<KV>& cache, float* out, const SeqBatch& batch,
                     const AttentionOptions& options) {
  attention_seq_batch<Isa, KV>("attention_paged", q, cache.k_pages, cache.v_pages, out, batch, options, &cache);
}

}  // namespace kernels
ALIBI_NAMESPACE_END
#endif  // per-target guard
