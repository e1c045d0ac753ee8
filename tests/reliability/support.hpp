#pragma once
// Shared by the reliability tests: problems with owned tensors, the kernel parameterisation, reduced sizes
// for slow runs (sanitizers, valgrind).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "call.hpp"
#include "kernels.hpp"
#include "oracle.hpp"

namespace alibi_reliability {

// Smaller problems and fewer repetitions: under a sanitizer, or when ALIBI_RELIABILITY_QUICK is set to
// anything but 0 (the valgrind run sets it).
inline bool quick_mode() {
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
  return true;
#else
#if defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
  return true;
#endif
#endif
  const char* env = std::getenv("ALIBI_RELIABILITY_QUICK");
  return env != nullptr && *env != '\0' && std::strcmp(env, "0") != 0;
#endif
}

// A call with its own tensors. Tensors get `misalign` floats of slack in front (data starts that many floats
// into a 64-byte aligned block), so a test can run the same call aligned and misaligned.
struct Problem {
  Call call;
  std::vector<float> q_block, k_block, v_block, out_block;
  std::vector<float> slopes, norms;

  std::int64_t q_count() const { return static_cast<std::int64_t>(q_elements(call)); }
  std::int64_t kv_count() const { return static_cast<std::int64_t>(kv_elements(call)); }
  float* q() { return const_cast<float*>(call.q); }
  float* k() { return const_cast<float*>(call.k); }
  float* v() { return const_cast<float*>(call.v); }
  std::vector<float> output() const { return std::vector<float>(call.out, call.out + q_count()); }
};

struct ShapeSpec {
  int batch = 1;
  std::int64_t q_len = 1, kv_len = 1;
  int num_heads = 1, num_kv_heads = 1, head_dim = 1;
  alibi::Mask mask = alibi::Mask::causal;
  std::int64_t window = 0, q_pos0 = -1;
  int num_threads = 1;
};

// Floats from a 64-byte aligned point plus `misalign` floats: std::vector's storage is only 16-byte aligned,
// so over-allocate and step forward to the next 64-byte boundary.
inline float* place(std::vector<float>& block, std::int64_t count, int misalign) {
  block.assign(static_cast<std::size_t>(count + 16 + misalign), 0.0f);
  auto address = reinterpret_cast<std::uintptr_t>(block.data());
  const std::uintptr_t aligned = (address + 63) & ~std::uintptr_t{63};
  return block.data() + (aligned - address) / sizeof(float) + misalign;
}

inline Problem make_problem(const ShapeSpec& s, std::uint32_t seed, int misalign = 0, float sigma = 1.0f) {
  Problem p;
  Call& c = p.call;
  c.shape.batch = s.batch;
  c.shape.q_len = s.q_len;
  c.shape.kv_len = s.kv_len;
  c.shape.num_heads = s.num_heads;
  c.shape.num_kv_heads = s.num_kv_heads;
  c.shape.head_dim = s.head_dim;
  c.options.mask = s.mask;
  c.options.window = s.window;
  c.options.q_pos0 = s.q_pos0;
  c.options.num_threads = s.num_threads;
  const std::int64_t nq = p.q_count(), nkv = p.kv_count();
  float* q = place(p.q_block, nq, misalign);
  float* k = place(p.k_block, nkv, misalign);
  float* v = place(p.v_block, nkv, misalign);
  c.out = place(p.out_block, nq, misalign);
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, sigma);
  for (std::int64_t n = 0; n < nq; ++n) q[n] = normal(rng);
  for (std::int64_t n = 0; n < nkv; ++n) k[n] = normal(rng);
  for (std::int64_t n = 0; n < nkv; ++n) v[n] = normal(rng);
  c.q = q;
  c.k = k;
  c.v = v;
  return p;
}

// Copies the tensor values and options of `from` into `to` (same shape, possibly another alignment).
inline void copy_values(const Problem& from, Problem& to) {
  std::memcpy(to.q(), from.call.q, sizeof(float) * static_cast<std::size_t>(from.q_count()));
  std::memcpy(to.k(), from.call.k, sizeof(float) * static_cast<std::size_t>(from.kv_count()));
  std::memcpy(to.v(), from.call.v, sizeof(float) * static_cast<std::size_t>(from.kv_count()));
  to.slopes = from.slopes;
  to.call.options.slopes = from.call.options.slopes != nullptr ? to.slopes.data() : nullptr;
  to.call.options.scale = from.call.options.scale;
  to.call.options.skip_tolerance = from.call.options.skip_tolerance;
}

inline bool bitwise_equal(const float* a, const float* b, std::int64_t count) {
  return count == 0 || std::memcmp(a, b, sizeof(float) * static_cast<std::size_t>(count)) == 0;
}

// GoogleTest prints a parameter with this (instead of its bytes).
inline void PrintTo(const Kernel& kernel, std::ostream* os) {
  *os << kernel.name;
}

// GoogleTest parameterisation over compiled_kernels(); a test body starts with ALIBI_SKIP_UNLESS_CPU().
class KernelTest : public ::testing::TestWithParam<Kernel> {};

inline std::string kernel_name(const ::testing::TestParamInfo<Kernel>& info) {
  return info.param.name;
}

#define ALIBI_INSTANTIATE_FOR_KERNELS(Fixture)                                                             \
  INSTANTIATE_TEST_SUITE_P(Kernels, Fixture, ::testing::ValuesIn(::alibi_reliability::compiled_kernels()), \
                           ::alibi_reliability::kernel_name)

#define ALIBI_SKIP_UNLESS_CPU()                                                                \
  do {                                                                                         \
    if (!GetParam().cpu_supports()) GTEST_SKIP() << "this CPU cannot run " << GetParam().name; \
  } while (false)

}  // namespace alibi_reliability
