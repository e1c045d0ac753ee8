// The one place that knows where K and V lie. The kernel sees keys and values only through KvSource: packed
// blocks of fp32 rows (pack_block), rows of the bound heads read in place by the streaming decode
// (bound_key, bound_value, widened as they are loaded), prefetches (prefetch, prefetch_key_line, ...) and single rows
// for the exact recompute and the skipping bounds (key_row, value_row, read through to_fp32). K/V of 16-bit
// floats are widened to fp32 (exactly) while packing or loading. Paged caches plug in here too: every read
// goes through the key's slot (detail::key_slot), one key at a time, so the kernel's arithmetic never
// depends on where a page boundary falls.
#include "alibi/detail/config.hpp"
// Per-target header: no #pragma once (Note [per-target headers] in detail/config.hpp).
#if (ALIBI_PASS == 0 && !defined(ALIBI_KERNELS_KV_SOURCE_HPP_0)) || \
    (ALIBI_PASS == 1 && !defined(ALIBI_KERNELS_KV_SOURCE_HPP_1)) || \
    (ALIBI_PASS == 2 && !defined(ALIBI_KERNELS_KV_SOURCE_HPP_2))
#if ALIBI_PASS == 0
#define ALIBI_KERNELS_KV_SOURCE_HPP_0
#elif ALIBI_PASS == 1
#define ALIBI_KERNELS_KV_SOURCE_HPP_1
#else
#define ALIBI_KERNELS_KV_SOURCE_HPP_2
#endif
#include <cstdint>
#include <type_traits>

#include "alibi/detail/config.hpp"
#include "alibi/detail/problem.hpp"
#include "alibi/isa/ops.hpp"
#include "alibi/kernels/elements.hpp"
#include "alibi/kernels/plan.hpp"

ALIBI_NAMESPACE_BEGIN
namespace kernels {

// Contiguous [batch][kv_len][num_kv_heads][head_dim] tensors of Element, or pages of them
// (detail::Problem::block_table).
template <class Isa, class Element = float>
class KvSource {
  static_assert(is_kv_element<Element>::value, "K/V elements are float, bfloat16 or float16");
  using O = simd::Ops<Isa>;
  using E = Elements<Isa, Element>;
  using vec = typename O::vec;
  static constexpr int W = O::width;

 public:
  explicit KvSource(const detail::Problem& pr)
      : k_(static_cast<const Element*>(pr.k)),
        v_(static_cast<const Element*>(pr.v)),
        kv_len_(pr.kv_len),
        dim_(pr.head_dim),
        kv_row_(static_cast<std::int64_t>(pr.num_kv_heads) * pr.head_dim),
        table_(pr.block_table),
        page_size_(pr.page_size) {
    // Power-of-two pages (the usual case) map a key to its slot with a shift and a mask, not a division.
    if (table_ != nullptr && (page_size_ & (page_size_ - 1)) == 0)
      while ((std::int64_t{1} << page_shift_) < page_size_) ++page_shift_;
    else
      page_shift_ = -1;
  }

  int head_dim() const { return dim_; }

  // Key / value row j of (batch b, kv head).
  const Element* key_row(std::int64_t b, int kv_head, std::int64_t j) const { return k_ + offset(b, kv_head, j); }
  const Element* value_row(std::int64_t b, int kv_head, std::int64_t j) const { return v_ + offset(b, kv_head, j); }

  // Key / value row j of the bound head kv_head0 + hh (bind). Key j of the next bound head is head_dim()
  // elements further.
  const Element* bound_key(int hh, std::int64_t j) const { return k_unit_ + slot(b_, j) * kv_row_ + hh * dim_; }
  const Element* bound_value(int hh, std::int64_t j) const { return v_unit_ + slot(b_, j) * kv_row_ + hh * dim_; }

  // A cache line of K into L1 (read next), or into L2 with key_to_l2; a cache line of V into L2 (read after
  // the block's Q.K). The streaming decode's requests ahead (Note [request order] in kernels/unit_worker.hpp).
  static ALIBI_ALWAYS_INLINE void prefetch_key_line(const char* line, bool key_to_l2) {
    // The cache level of a prefetch is part of its instruction, not an operand.
    if (key_to_l2)
      ALIBI_PREFETCH_L2(line);
    else
      ALIBI_PREFETCH(line);
  }
  static ALIBI_ALWAYS_INLINE void prefetch_value_line(const char* line) { ALIBI_PREFETCH_L2(line); }

  // Whether key `key` of the bound batch entry lies where a contiguous cache would put it relative to key
  // `from`: always without a block table; with one, when the pages between them follow each other in the pool.
  bool follows(std::int64_t from, std::int64_t key) const { return slot(b_, key) - slot(b_, from) == key - from; }

  // Selects the kv heads [kv_head0, kv_head0 + heads) of batch entry b for the calls below.
  void bind(std::int64_t b, int kv_head0) {
    b_ = b;
    k_unit_ = k_ + static_cast<std::int64_t>(kv_head0) * dim_;
    v_unit_ = v_ + static_cast<std::int64_t>(kv_head0) * dim_;
  }

  // Requests keys and values [j0, j1) of the first bound head. Its rows are strided (num_kv_heads *
  // head_dim apart), which the hardware prefetchers follow poorly.
  void prefetch(std::int64_t j0, std::int64_t j1) const {
    for (std::int64_t j = j0; j < j1; ++j) {
      const std::int64_t at = slot(b_, j) * kv_row_;
      prefetch_bytes(k_unit_ + at, dim_ * static_cast<std::int64_t>(sizeof(Element)));
      prefetch_bytes(v_unit_ + at, dim_ * static_cast<std::int64_t>(sizeof(Element)));
    }
  }

  // Copies keys and values [j0, j0 + nk) of the bound heads hh with head_active[hh] into k_pack / v_pack:
  // row j of head hh at (hh * head_stride + j) * pack_stride, zero-padded to whole vectors. Key by key, so
  // the reads sweep memory in order. In the input, a head's K/V rows sit num_kv_heads * head_dim floats
  // apart, often a multiple of 4 KiB, which would map a whole block onto a few L1 sets. Returns true if
  // some copied value is inf or NaN (found in the copy, so it costs no extra pass).
  bool pack_block(std::int64_t j0, int nk, int heads, const char* head_active, float* k_pack, float* v_pack,
                  std::int64_t head_stride, std::int64_t pack_stride) const {
    vec bad = O::zero();
    for (int j = 0; j < nk; ++j) {
      const std::int64_t at = slot(b_, j0 + j) * kv_row_;
      for (int hh = 0; hh < heads; ++hh) {
        if (!head_active[hh]) continue;
        const std::int64_t to = (static_cast<std::int64_t>(hh) * head_stride + j) * pack_stride;
        const std::int64_t head_at = at + static_cast<std::int64_t>(hh) * dim_;
        copy_row(k_pack + to, k_unit_ + head_at, dim_);
        copy_row_checked(v_pack + to, v_unit_ + head_at, dim_, bad);
      }
    }
    return O::reduce_add(bad) != 0.0f;
  }

  // Requests the cache lines of floats [p, p + n).
  static void prefetch_span(const float* p, std::int64_t n, bool for_write = false) {
    for (std::int64_t d = 0; d < n; d += Tuning::kLineFloats) {
      if (for_write)
        ALIBI_PREFETCH_WRITE(p + d);
      else
        ALIBI_PREFETCH(p + d);
    }
  }
  // Requests the cache lines of bytes [p, p + n).
  static void prefetch_bytes(const void* p, std::int64_t n) {
    const char* bytes = static_cast<const char*>(p);
    for (std::int64_t d = 0; d < n; d += Tuning::kLineFloats * static_cast<std::int64_t>(sizeof(float)))
      ALIBI_PREFETCH(bytes + d);
  }

 private:
  // detail::key_slot, with a shift for power-of-two pages.
  std::int64_t slot(std::int64_t b, std::int64_t j) const {
    if (table_ == nullptr) return b * kv_len_ + j;
    if (page_shift_ >= 0)
      return (static_cast<std::int64_t>(table_[j >> page_shift_]) << page_shift_) + (j & (page_size_ - 1));
    return static_cast<std::int64_t>(table_[j / page_size_]) * page_size_ + j % page_size_;
  }
  std::int64_t offset(std::int64_t b, int kv_head, std::int64_t j) const {
    return slot(b, j) * kv_row_ + static_cast<std::int64_t>(kv_head) * dim_;
  }

  // Inline vector copy: rows are a few hundred bytes, where a memcpy call per row costs about as much as
  // the copy.
  static ALIBI_ALWAYS_INLINE void copy_row(float* to, const Element* from, int n) {
    int d = 0;
    for (; d + W <= n; d += W) O::store(to + d, E::load(from + d));
    if (d < n) O::store_partial(to + d, E::load_partial(from + d, n - d), n - d);
  }
  // The same, and `bad` turns NaN if an element is inf or NaN (x * 0 is 0 exactly for finite x).
  static ALIBI_ALWAYS_INLINE void copy_row_checked(float* to, const Element* from, int n, vec& bad) {
    int d = 0;
    for (; d + W <= n; d += W) {
      const vec x = E::load(from + d);
      O::store(to + d, x);
      bad = O::add(bad, O::mul(x, O::zero()));
    }
    if (d < n) {
      const vec x = E::load_partial(from + d, n - d);
      O::store_partial(to + d, x, n - d);
      bad = O::add(bad, O::mul(x, O::zero()));
    }
  }

  const Element* k_;
  const Element* v_;
  std::int64_t kv_len_;
  int dim_;
  std::int64_t kv_row_;  // elements between consecutive keys of one head
  const std::int32_t* table_;
  std::int64_t page_size_;
  int page_shift_ = 0;               // log2(page_size_) for power-of-two pages, else -1
  std::int64_t b_ = 0;               // the bound batch entry
  const Element* k_unit_ = nullptr;  // first bound head of slot 0
  const Element* v_unit_ = nullptr;
};

}  // namespace kernels
ALIBI_NAMESPACE_END
#endif  // per-target guard
