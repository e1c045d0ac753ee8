#pragma once
// Benchmark shapes, their exact work counts, and cached random inputs.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "alibi/convert.hpp"
#include "alibi/types.hpp"
#include "aligned_vector.hpp"
#include "variants.hpp"

namespace alibi_bench {

/// One causal ALiBi attention problem; the queries sit on the last q_len key positions. Written
/// {batch, q_len, kv_len, num_heads, num_kv_heads, head_dim}.
using Shape = alibi::AttentionShape;

inline std::string shape_key(const Shape& shape) {
  return std::to_string(shape.batch) + "x" + std::to_string(shape.q_len) + "x" + std::to_string(shape.kv_len) + "x" +
         std::to_string(shape.num_heads) + "/" + std::to_string(shape.num_kv_heads) + "x" +
         std::to_string(shape.head_dim);
}
inline std::int64_t q_elements(const Shape& shape) {
  return shape.batch * shape.q_len * shape.num_heads * shape.head_dim;
}
inline std::int64_t kv_elements(const Shape& shape) {
  return shape.batch * shape.kv_len * shape.num_kv_heads * shape.head_dim;
}

/// Keys visible to all query rows of one (batch, head) under the causal mask.
inline std::int64_t visible_keys(const Shape& shape) {
  std::int64_t total = 0;
  const std::int64_t q_pos0 = shape.kv_len - shape.q_len;
  for (std::int64_t i = 0; i < shape.q_len; ++i) {
    const std::int64_t position = q_pos0 + i;
    total += position < 0 ? 0 : std::min(position + 1, shape.kv_len);
  }
  return total;
}

/// Exact FLOPs of the causal triangle: per visible (row, key) pair, q.k and p*v are head_dim
/// multiply-adds each, 4 * head_dim FLOPs together. Work the mask removes is not counted.
inline double attention_flops(const Shape& shape) {
  return 4.0 * shape.head_dim * static_cast<double>(visible_keys(shape)) * shape.num_heads * shape.batch;
}

/// FLOPs of the backward pass over the causal triangle, counted as the issue does: per visible pair, the
/// five head_dim-long products S = q.k, dP = dO.v, dV += P dO, dK += dS q and dQ += dS k, 10 * head_dim.
/// Recomputation and the row statistics are not counted.
inline double backward_flops(const Shape& shape) {
  return 10.0 * shape.head_dim * static_cast<double>(visible_keys(shape)) * shape.num_heads * shape.batch;
}
/// K and V bytes a kernel must stream: each kv head's keys and values once.
inline double kv_bytes(const Shape& shape, KvType type = KvType::f32) {
  return 2.0 * kv_type_bytes(type) * static_cast<double>(kv_elements(shape));
}

/// Deterministic N(0, 1) floats (splitmix64 + Box-Muller); fast enough for hundreds of MiB.
template <class FloatVector>
void fill_standard_normal(FloatVector& values, std::uint64_t seed) {
  std::uint64_t state = seed;
  auto next_unit = [&state] {
    state += 0x9E3779B97F4A7C15ull;
    std::uint64_t z = state;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (static_cast<double>(z >> 11) + 0.5) * 0x1p-53;  // in (0, 1): log() stays finite
  };
  const double two_pi = 6.283185307179586;
  for (std::size_t i = 0; i < values.size(); i += 2) {
    const double radius = std::sqrt(-2.0 * std::log(next_unit()));
    const double angle = two_pi * next_unit();
    values[i] = static_cast<float>(radius * std::cos(angle));
    if (i + 1 < values.size()) values[i + 1] = static_cast<float>(radius * std::sin(angle));
  }
}

struct Tensors {
  std::string key;
  AlignedVector<float> q, k, v, out;
  AlignedVector<float> key_norms;  // filled on demand by key_norms_for()
  // K and V rounded to 16 bits (alibi::convert), filled on demand by make_call.
  AlignedVector<alibi::bfloat16> k_bf16, v_bf16;
  AlignedVector<alibi::float16> k_f16, v_f16;
};

/// Inputs for a shape, regenerated only when the shape changes. Google Benchmark calls a benchmark
/// function several times (iteration probing, repetitions); one cached shape keeps memory bounded.
inline Tensors& tensors_for(const Shape& shape) {
  static Tensors cached;
  if (cached.key != shape_key(shape)) {
    cached = Tensors{};  // release the previous shape's memory before allocating the next
    cached.q.resize(static_cast<std::size_t>(q_elements(shape)));
    cached.k.resize(static_cast<std::size_t>(kv_elements(shape)));
    cached.v.resize(static_cast<std::size_t>(kv_elements(shape)));
    cached.out.assign(static_cast<std::size_t>(q_elements(shape)), 0.0f);
    fill_standard_normal(cached.q, 1);
    fill_standard_normal(cached.k, 2);
    fill_standard_normal(cached.v, 3);
    cached.key = shape_key(shape);
  }
  return cached;
}

inline AttentionCall make_call(const Shape& shape, Tensors& tensors, float* out, KvType kv_type = KvType::f32) {
  AttentionCall call;
  call.q = tensors.q.data();
  call.k = tensors.k.data();
  call.v = tensors.v.data();
  call.kv_type = kv_type;
  if (kv_type == KvType::bf16) {
    if (tensors.k_bf16.empty()) {
      tensors.k_bf16.resize(tensors.k.size());
      tensors.v_bf16.resize(tensors.v.size());
      alibi::convert(tensors.k.data(), tensors.k_bf16.data(), tensors.k.size());
      alibi::convert(tensors.v.data(), tensors.v_bf16.data(), tensors.v.size());
    }
    call.k_bf16 = tensors.k_bf16.data();
    call.v_bf16 = tensors.v_bf16.data();
  } else if (kv_type == KvType::f16) {
    if (tensors.k_f16.empty()) {
      tensors.k_f16.resize(tensors.k.size());
      tensors.v_f16.resize(tensors.v.size());
      alibi::convert(tensors.k.data(), tensors.k_f16.data(), tensors.k.size());
      alibi::convert(tensors.v.data(), tensors.v_f16.data(), tensors.v.size());
    }
    call.k_f16 = tensors.k_f16.data();
    call.v_f16 = tensors.v_f16.data();
  }
  call.out = out;
  call.shape = shape;
  call.options.num_threads = 1;  // a benchmark asks for more threads where it means it
  return call;
}

/// The K/V rows of a contiguous call, as bytes of its element type.
inline const void* call_k(const AttentionCall& call) {
  return call.kv_type == KvType::bf16  ? static_cast<const void*>(call.k_bf16)
         : call.kv_type == KvType::f16 ? static_cast<const void*>(call.k_f16)
                                       : static_cast<const void*>(call.k);
}
inline const void* call_v(const AttentionCall& call) {
  return call.kv_type == KvType::bf16  ? static_cast<const void*>(call.v_bf16)
         : call.kv_type == KvType::f16 ? static_cast<const void*>(call.v_f16)
                                       : static_cast<const void*>(call.v);
}

// ---- paged caches -------------------------------------------------------------------------------------

/// The keys of tensors_for(shape) (batch 1) in a paged cache of kv_type elements: page i of the sequence
/// (keys i * page_size ...) sits at pool page block_table[i], the pages in a random order (seeded), as in
/// a cache whose pages were freed and reused by many sequences. The last page's unused slots are zero.
struct PagedTensors {
  std::string key;
  AlignedVector<unsigned char> k, v;  // [num_pages][page_size][num_kv_heads][head_dim] elements of kv_type
  std::vector<std::int32_t> block_table;
  std::int64_t num_pages = 0;
  int page_size = 0;
};

inline PagedTensors& paged_tensors_for(const Shape& shape, KvType kv_type, int page_size) {
  static PagedTensors cached;
  Tensors& tensors = tensors_for(shape);
  const std::string key = shape_key(shape) + "/" + kv_type_name(kv_type) + "/page:" + std::to_string(page_size);
  if (cached.key == key) return cached;
  cached = PagedTensors{};  // release the previous pool first
  const AttentionCall contiguous = make_call(shape, tensors, tensors.out.data(), kv_type);
  const auto* k_rows = static_cast<const unsigned char*>(call_k(contiguous));
  const auto* v_rows = static_cast<const unsigned char*>(call_v(contiguous));
  const std::size_t row_bytes = static_cast<std::size_t>(shape.num_kv_heads) *
                                static_cast<std::size_t>(shape.head_dim) *
                                static_cast<std::size_t>(kv_type_bytes(kv_type));
  const std::size_t page_bytes = row_bytes * static_cast<std::size_t>(page_size);
  const std::int64_t num_pages = (shape.kv_len + page_size - 1) / page_size;
  cached.block_table.resize(static_cast<std::size_t>(num_pages));
  std::iota(cached.block_table.begin(), cached.block_table.end(), 0);
  std::mt19937_64 rng(static_cast<std::uint64_t>(page_size));
  std::shuffle(cached.block_table.begin(), cached.block_table.end(), rng);
  cached.k.assign(page_bytes * static_cast<std::size_t>(num_pages), 0);
  cached.v.assign(cached.k.size(), 0);
  for (std::int64_t page = 0; page < num_pages; ++page) {
    const std::int64_t rows = std::min<std::int64_t>(page_size, shape.kv_len - page * page_size);
    const std::size_t from = page_bytes * static_cast<std::size_t>(page);
    const std::size_t to = page_bytes * static_cast<std::size_t>(cached.block_table[static_cast<std::size_t>(page)]);
    std::memcpy(&cached.k[to], k_rows + from, row_bytes * static_cast<std::size_t>(rows));
    std::memcpy(&cached.v[to], v_rows + from, row_bytes * static_cast<std::size_t>(rows));
  }
  cached.num_pages = num_pages;
  cached.page_size = page_size;
  cached.key = key;
  return cached;
}

// ---- ragged batches ------------------------------------------------------------------------------------

/// Sequences of one attention_varlen call: q_lens[s] queries on the last positions of kv_lens[s] keys.
struct RaggedBatch {
  std::vector<std::int64_t> q_lens, kv_lens;
  int num_heads = 0, num_kv_heads = 0, head_dim = 0;

  /// Sequence s as a dense problem of batch 1.
  Shape sequence(std::size_t s) const { return Shape{1, q_lens[s], kv_lens[s], num_heads, num_kv_heads, head_dim}; }
  std::string key() const {
    std::string text = std::to_string(num_heads) + "/" + std::to_string(num_kv_heads) + "x" + std::to_string(head_dim);
    for (std::size_t s = 0; s < q_lens.size(); ++s)
      text += "," + std::to_string(q_lens[s]) + ":" + std::to_string(kv_lens[s]);
    return text;
  }
};

/// Exact causal FLOPs of the batch: the sum of each sequence's (attention_flops of its dense problem).
inline double ragged_flops(const RaggedBatch& batch) {
  double total = 0.0;
  for (std::size_t s = 0; s < batch.q_lens.size(); ++s) total += attention_flops(batch.sequence(s));
  return total;
}

/// K and V bytes the call must stream: every sequence's keys and values once.
inline double ragged_kv_bytes(const RaggedBatch& batch, KvType type) {
  double total = 0.0;
  for (std::size_t s = 0; s < batch.q_lens.size(); ++s) total += kv_bytes(batch.sequence(s), type);
  return total;
}

/// Packed inputs of a ragged batch in one K/V element type (only that type is kept: the fp32 values are
/// rounded to 16 bits and dropped), regenerated when the batch or the type changes.
struct RaggedTensors {
  std::string key;
  std::vector<std::int64_t> q_offsets, kv_lens;
  AlignedVector<float> q, out;
  AlignedVector<float> k, v;  // kv_type f32
  AlignedVector<alibi::bfloat16> k_bf16, v_bf16;
  AlignedVector<alibi::float16> k_f16, v_f16;
};

inline RaggedTensors& ragged_tensors_for(const RaggedBatch& batch, KvType kv_type) {
  static RaggedTensors cached;
  const std::string key = batch.key() + "/" + kv_type_name(kv_type);
  if (cached.key == key) return cached;
  cached = RaggedTensors{};
  std::int64_t total_q = 0, total_kv = 0;
  cached.q_offsets.push_back(0);
  for (std::size_t s = 0; s < batch.q_lens.size(); ++s) {
    total_q += batch.q_lens[s];
    total_kv += batch.kv_lens[s];
    cached.q_offsets.push_back(total_q);
  }
  cached.kv_lens = batch.kv_lens;
  const std::size_t q_count = static_cast<std::size_t>(total_q * batch.num_heads * batch.head_dim);
  const std::size_t kv_count = static_cast<std::size_t>(total_kv * batch.num_kv_heads * batch.head_dim);
  cached.q.resize(q_count);
  cached.out.assign(q_count, 0.0f);
  fill_standard_normal(cached.q, 1);
  cached.k.resize(kv_count);
  cached.v.resize(kv_count);
  fill_standard_normal(cached.k, 2);
  fill_standard_normal(cached.v, 3);
  if (kv_type == KvType::bf16) {
    cached.k_bf16.resize(kv_count);
    cached.v_bf16.resize(kv_count);
    alibi::convert(cached.k.data(), cached.k_bf16.data(), kv_count);
    alibi::convert(cached.v.data(), cached.v_bf16.data(), kv_count);
  } else if (kv_type == KvType::f16) {
    cached.k_f16.resize(kv_count);
    cached.v_f16.resize(kv_count);
    alibi::convert(cached.k.data(), cached.k_f16.data(), kv_count);
    alibi::convert(cached.v.data(), cached.v_f16.data(), kv_count);
  }
  if (kv_type != KvType::f32) {
    AlignedVector<float>().swap(cached.k);
    AlignedVector<float>().swap(cached.v);
  }
  cached.key = key;
  return cached;
}

/// The attention_varlen call over ragged_tensors_for(batch, kv_type), one thread, writing tensors.out.
inline ServingCall make_ragged_call(const RaggedBatch& batch, RaggedTensors& tensors, KvType kv_type) {
  ServingCall call;
  call.q = tensors.q.data();
  call.kv_type = kv_type;
  call.k = kv_type == KvType::bf16  ? static_cast<const void*>(tensors.k_bf16.data())
           : kv_type == KvType::f16 ? static_cast<const void*>(tensors.k_f16.data())
                                    : static_cast<const void*>(tensors.k.data());
  call.v = kv_type == KvType::bf16  ? static_cast<const void*>(tensors.v_bf16.data())
           : kv_type == KvType::f16 ? static_cast<const void*>(tensors.v_f16.data())
                                    : static_cast<const void*>(tensors.v.data());
  call.out = tensors.out.data();
  call.batch.num_seqs = static_cast<std::int64_t>(batch.q_lens.size());
  call.batch.q_offsets = tensors.q_offsets.data();
  call.batch.kv_lens = tensors.kv_lens.data();
  call.batch.num_heads = batch.num_heads;
  call.batch.num_kv_heads = batch.num_kv_heads;
  call.batch.head_dim = batch.head_dim;
  call.options.num_threads = 1;
  return call;
}

}  // namespace alibi_bench
