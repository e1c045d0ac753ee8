#pragma once
// Benchmark shapes, their exact work counts, and cached random inputs.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "alibi/convert.hpp"
#include "alibi/types.hpp"
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

/// K and V bytes a kernel must stream: each kv head's keys and values once.
inline double kv_bytes(const Shape& shape, KvType type = KvType::f32) {
  return 2.0 * kv_type_bytes(type) * static_cast<double>(kv_elements(shape));
}

/// Deterministic N(0, 1) floats (splitmix64 + Box-Muller); fast enough for hundreds of MiB.
inline void fill_standard_normal(std::vector<float>& values, std::uint64_t seed) {
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
  std::vector<float> q, k, v, out;
  std::vector<float> key_norms;  // filled on demand by key_norms_for()
  // K and V rounded to 16 bits (alibi::convert), filled on demand by make_call.
  std::vector<alibi::bfloat16> k_bf16, v_bf16;
  std::vector<alibi::float16> k_f16, v_f16;
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

}  // namespace alibi_bench
