#pragma once
// The three K/V element types for tests that run one check per type: their names, a float stored as each
// (by the library's conversions, which convert_test.cpp checks on their own: they only decide which inputs a
// test gets), and the exact value of a stored element from its format's definition (float16_reference.hpp),
// which is all a float64 reference ever sees.
#include "alibi/convert.hpp"
#include "float16_reference.hpp"
#include "test_support.hpp"

namespace alibi_test {

inline const char* kv_name(float) {
  return "float";
}
inline const char* kv_name(alibi::bfloat16) {
  return "bfloat16";
}
inline const char* kv_name(alibi::float16) {
  return "float16";
}

template <class KV>
KV stored_as(float x);
template <>
inline float stored_as<float>(float x) {
  return x;
}
template <>
inline alibi::bfloat16 stored_as<alibi::bfloat16>(float x) {
  return alibi::to_bfloat16(x);
}
template <>
inline alibi::float16 stored_as<alibi::float16>(float x) {
  return alibi::to_float16(x);
}

inline float value_of(float x) {
  return x;
}
inline float value_of(alibi::bfloat16 x) {
  return static_cast<float>(decode_bf16(x.bits));
}
inline float value_of(alibi::float16 x) {
  return static_cast<float>(decode_f16(x.bits));
}

// Calls body(KV{}) for float, bfloat16 and float16.
template <class Body>
void for_each_kv(Body&& body) {
  body(0.0f);
  body(alibi::bfloat16{});
  body(alibi::float16{});
}

// The same, but quick runs take only one of the three, in rotation by `index` (every type still comes up).
template <class Body>
void for_each_kv_rotating(int index, Body&& body) {
  const bool quick = alibi_test_quick_mode();
  if (!quick || index % 3 == 0) body(0.0f);
  if (!quick || index % 3 == 1) body(alibi::bfloat16{});
  if (!quick || index % 3 == 2) body(alibi::float16{});
}

}  // namespace alibi_test
