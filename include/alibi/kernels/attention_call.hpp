// One attention call: validation and defaults, the key-norm bounds for skipping, the plan
// (kernels/plan.hpp), then the unit workers on the thread team and the split-K merge. alibi::attention
// and alibi::dispatch::attention both land here.
#include "alibi/detail/config.hpp"
// Per-target header: no #pragma once (Note [per-target headers] in detail/config.hpp).
#if (ALIBI_PASS == 0 && !defined(ALIBI_KERNELS_ATTENTION_CALL_HPP_0)) || \
    (ALIBI_PASS == 1 && !defined(ALIBI_KERNELS_ATTENTION_CALL_HPP_1)) || \
    (ALIBI_PASS == 2 && !defined(ALIBI_KERNELS_ATTENTION_CALL_HPP_2))
#if ALIBI_PASS == 0
#define ALIBI_KERNELS_ATTENTION_CALL_HPP_0
#elif ALIBI_PASS == 1
#define ALIBI_KERNELS_ATTENTION_CALL_HPP_1
#else
#define ALIBI_KERNELS_ATTENTION_CALL_HPP_2
#endif
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <type_traits>

#include "alibi/detail/buffer.hpp"
#include "alibi/detail/threading.hpp"
#include "alibi/detail/validate.hpp"
#include "alibi/kernels/elements.hpp"
#include "alibi/kernels/key_norms.hpp"
#include "alibi/kernels/kv_source.hpp"
#include "alibi/kernels/partials.hpp"
#include "alibi/kernels/plan.hpp"
#include "alibi/kernels/skipping.hpp"
#include "alibi/kernels/unit_worker.hpp"
#include "alibi/types.hpp"

ALIBI_NAMESPACE_BEGIN
namespace kernels {

// One validated problem (a dense call, or one sequence of a ragged batch) made ready for its units: the
// key-norm bounds for skipping, the plan and the split-K state.
template <class Isa>
struct PreparedProblem {
  detail::Problem pr;
  Plan<Isa> plan{};
  bool trivial = true;  // no row, or no key: written by prepare() itself, no unit to run
  std::unique_ptr<KeyNormBounds<Isa>> bounds;
  detail::Buffer<float> partial;  // split-K: the chunks' states of every unit
  double cost = 0.0;              // estimated FLOPs, for ordering the work of several problems
  std::int64_t sequences = 1;     // of the call the problem is one of (Plan::team_threads)

  std::int64_t pieces() const { return trivial ? 0 : plan.pieces(); }
  std::int64_t merge_units() const { return trivial || !plan.split ? 0 : plan.base_units; }
};

template <class Isa, class KV>
void prepare_problem(PreparedProblem<Isa>& prep) {
  const detail::Problem& pr = prep.pr;
  const std::int64_t q_count = pr.batch * pr.q_len * pr.num_heads * pr.head_dim;
  prep.trivial = true;
  if (q_count == 0) return;
  if (pr.kv_len == 0) {  // no key at all: every row sees nothing
    for (std::int64_t n = 0; n < q_count; ++n) pr.out[n] = 0.0f;
    if (pr.lse != nullptr)
      for (std::int64_t n = 0; n < q_count / pr.head_dim; ++n) pr.lse[n] = -HUGE_VALF;
    return;
  }
  prep.trivial = false;
  // Block skipping needs key norm bounds (one pass over K); only worth it when some slope decays.
  bool some_slope_decays = false;
  for (int h = 0; h < pr.num_heads; ++h) some_slope_decays = some_slope_decays || pr.slopes[h] > 0.0f;
  if (pr.skip_tolerance > 0.0f && some_slope_decays)
    prep.bounds = std::make_unique<KeyNormBounds<Isa>>(pr, static_cast<const KV*>(pr.k));
  prep.plan = Plan<Isa>::make(pr, static_cast<int>(sizeof(KV)), prep.sequences);
  const Plan<Isa>& plan = prep.plan;
  prep.cost = plan.flops;
  if (plan.split) prep.partial.assign(static_cast<std::size_t>(plan.pieces() * plan.partial_floats_per_piece()), 0.0f);
}

// Runs the units of `count` prepared problems on one thread team, then their split-K merges. Work goes
// problem by problem in `order`; the arithmetic of each problem is that of its own plan, so the result
// does not depend on the order, the thread count or the other problems.
template <class Isa, class KV>
void run_problems(PreparedProblem<Isa>* problems, const std::int64_t* order, std::int64_t count, int threads) {
  detail::Buffer<std::int64_t> first_piece(static_cast<std::size_t>(count + 1)),
      first_merge(static_cast<std::size_t>(count + 1));
  for (std::int64_t n = 0; n < count; ++n) {
    const PreparedProblem<Isa>& prep = problems[order[n]];
    first_piece[static_cast<std::size_t>(n + 1)] = first_piece[static_cast<std::size_t>(n)] + prep.pieces();
    first_merge[static_cast<std::size_t>(n + 1)] = first_merge[static_cast<std::size_t>(n)] + prep.merge_units();
  }
  // The problem (position in `order`) holding work item `item` of the prefix sums `first`: the last n
  // with first[n] <= item. (By hand: std::upper_bound over int64 would be one weak symbol shared by
  // every ISA's code, Note [ABI namespace].)
  const auto owner = [count](const detail::Buffer<std::int64_t>& first, std::int64_t item) {
    std::int64_t lo = 0, hi = count;  // first[lo] <= item < first[hi]
    while (hi - lo > 1) {
      const std::int64_t mid = lo + (hi - lo) / 2;
      if (first[static_cast<std::size_t>(mid)] <= item)
        lo = mid;
      else
        hi = mid;
    }
    return lo;
  };
  const std::int64_t pieces = first_piece[static_cast<std::size_t>(count)];
  detail::parallel_for_units(pieces, threads, [&] {
    // A thread keeps one worker (its scratch buffers) while its pieces stay within one problem.
    return [&, at = std::int64_t{-1}, worker = std::unique_ptr<UnitWorker<Isa, KV>>()](std::int64_t item) mutable {
      const std::int64_t n = owner(first_piece, item);
      PreparedProblem<Isa>& prep = problems[order[n]];
      if (n != at) {
        worker = std::make_unique<UnitWorker<Isa, KV>>(prep.pr, prep.plan, prep.bounds.get(), prep.partial.data());
        at = n;
      }
      worker->run_piece(item - first_piece[static_cast<std::size_t>(n)]);
    };
  });
  const std::int64_t merges = first_merge[static_cast<std::size_t>(count)];
  detail::parallel_for_units(merges, threads, [&] {
    return [&](std::int64_t item) {
      const std::int64_t n = owner(first_merge, item);
      const PreparedProblem<Isa>& prep = problems[order[n]];
      const std::int64_t unit = item - first_merge[static_cast<std::size_t>(n)];
      detail::Buffer<float> weights(static_cast<std::size_t>(prep.plan.chunks));
      merge_unit<Isa, KV>(prep.pr, prep.plan,
                          prep.partial.data() + unit * prep.plan.chunks * prep.plan.partial_floats_per_piece(), 0,
                          prep.plan.chunks, unit, weights.data());
    };
  });
}

// One validated problem on its own thread team.
template <class Isa, class KV>
void run_problem(const detail::Problem& pr) {
  PreparedProblem<Isa> prep;
  prep.pr = pr;
  prepare_problem<Isa, KV>(prep);
  const std::int64_t order = 0;
  run_problems<Isa, KV>(&prep, &order, 1, prep.trivial ? 1 : prep.plan.threads);
}

// KV: float, bfloat16 or float16 (kernels/elements.hpp); widened exactly to fp32 as blocks are packed.
template <class Isa, class KV>
void attention(const float* q, const KV* k, const KV* v, float* out, const AttentionShape& shape,
               const AttentionOptions& options) {
  static_assert(is_kv_element<KV>::value, "alibi::attention: k and v must be float, bfloat16 or float16");
  detail::Buffer<float> default_slopes;
  const detail::Problem pr = detail::validate_attention(q, k, v, out, shape, options, default_slopes);
  using Narrower = typename simd::Ops<Isa>::narrower;
  if constexpr (!std::is_same<Narrower, Isa>::value) {
    if (Plan<Isa>::prefers_narrower(pr, static_cast<int>(sizeof(KV)))) {  // Note [narrower vectors] in kernels/plan.hpp
      run_problem<Narrower, KV>(pr);
      return;
    }
  }
  run_problem<Isa, KV>(pr);
}

template <class KV>
void key_norms(const KV* k, const AttentionShape& shape, float* out) {
  static_assert(is_kv_element<KV>::value, "alibi::key_norms: k must be float, bfloat16 or float16");
  const char* fn = "key_norms";
  detail::require(shape.batch >= 0, fn, "batch", "must be >= 0, got %lld", shape.batch);
  detail::require(shape.kv_len >= 0, fn, "kv_len", "must be >= 0, got %lld", shape.kv_len);
  detail::require(shape.num_kv_heads > 0, fn, "num_kv_heads", "must be >= 1, got %lld", shape.num_kv_heads);
  detail::require(shape.head_dim > 0, fn, "head_dim", "must be >= 1, got %lld", shape.head_dim);
  const std::int64_t rows = detail::checked_mul(detail::checked_mul(shape.batch, shape.kv_len, fn, "batch * kv_len"),
                                                shape.num_kv_heads, fn, "batch * kv_len * num_kv_heads");
  detail::checked_mul(rows, shape.head_dim, fn, "the k tensor");
  if (rows == 0) return;
  detail::require(k != nullptr, fn, "k", "must not be null for a non-empty key tensor");
  detail::require(out != nullptr, fn, "out", "must not be null for a non-empty key tensor");
  for (std::int64_t row = 0; row < rows; ++row) out[row] = key_norm_bound(k + row * shape.head_dim, shape.head_dim);
}

}  // namespace kernels
ALIBI_NAMESPACE_END
#endif  // per-target guard
