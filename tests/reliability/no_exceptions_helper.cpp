// A program built with -fno-exceptions (every TU of it: see the note in no_exceptions_test.cpp) that calls
// the library. argv[1] picks the call:
//   valid         a correct call; prints its first output and exits 0
//   num_heads     num_heads = 0
//   overlap       out overlapping k
//   overflow      an element count past PTRDIFF_MAX
//   key_norms     alibi::key_norms with a null k
// Each bad call must print "alibi: invalid argument: <message naming the parameter>" and abort, before
// writing to out (the helper prints "RETURNED" if the call comes back, "OUT WRITTEN" if out changed).
#if defined(__cpp_exceptions) || defined(__EXCEPTIONS)
#error "no_exceptions_helper.cpp must be compiled with -fno-exceptions"
#endif

#include <cstdio>
#include <cstring>

#include "alibi/alibi.hpp"

int main(int argc, char** argv) {
  const char* which = argc > 1 ? argv[1] : "valid";
  float q[8], k[32], v[32], out[8];
  for (int n = 0; n < 8; ++n) q[n] = 0.25f * static_cast<float>(n), out[n] = -3.0f;
  for (int n = 0; n < 32; ++n) k[n] = 0.1f * static_cast<float>(n % 5), v[n] = static_cast<float>(n);
  alibi::AttentionShape shape;
  shape.q_len = 2;
  shape.kv_len = 8;
  shape.num_heads = shape.num_kv_heads = 1;
  shape.head_dim = 4;
  float* destination = out;
  if (std::strcmp(which, "num_heads") == 0) {
    shape.num_heads = 0;
  } else if (std::strcmp(which, "overlap") == 0) {
    destination = k + 3;
  } else if (std::strcmp(which, "overflow") == 0) {
    shape.q_len = static_cast<std::int64_t>(1) << 62;
  } else if (std::strcmp(which, "key_norms") == 0) {
    alibi::key_norms(nullptr, shape, out);
    std::printf("RETURNED\n");
    return 0;
  } else if (std::strcmp(which, "valid") != 0) {
    std::fprintf(stderr, "unknown case %s\n", which);
    return 2;
  }
  alibi::attention<alibi::isa::scalar>(q, k, v, destination, shape);
  if (std::strcmp(which, "valid") == 0) {
    std::printf("out[0] = %g\n", static_cast<double>(out[0]));
    return 0;
  }
  std::printf("RETURNED\n");
  for (float x : out)
    if (x != -3.0f) std::printf("OUT WRITTEN\n");
  return 0;
}
