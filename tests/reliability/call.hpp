#pragma once
// One attention call: the arguments of alibi::attention, bundled so a test can hand a call around.
//
// alibi's value types (AttentionShape, AttentionOptions, Mask) live directly in namespace alibi, the same
// in every TU whatever its ISA flags (Note [ABI namespace] in alibi/detail/config.hpp), so the tests (built
// without ISA flags) pass a Call straight to the per-ISA kernel TUs (kernels_*.cpp). The oracle
// (oracle.hpp) reads it too.
#include <cstdint>
#include <cstdio>
#include <string>

#include "alibi/types.hpp"

namespace alibi_reliability {

using Mask = alibi::Mask;

// Options with the library's defaults, except one thread: the tests ask for more where they mean it.
inline alibi::AttentionOptions single_threaded_options() {
  alibi::AttentionOptions options;
  options.num_threads = 1;
  return options;
}

struct Call {
  const float* q = nullptr;
  const float* k = nullptr;
  const float* v = nullptr;
  float* out = nullptr;
  alibi::AttentionShape shape;
  // options.mask may hold an invalid enumerator value on purpose (static_cast<alibi::Mask>(2)): the
  // contract rejects it.
  alibi::AttentionOptions options = single_threaded_options();
};

inline bool is_causal(const Call& c) {
  return c.options.mask == alibi::Mask::causal;
}

inline std::string describe(const Call& c) {
  const alibi::AttentionShape& s = c.shape;
  const alibi::AttentionOptions& o = c.options;
  char text[512];
  std::snprintf(text, sizeof text,
                "batch=%d q_len=%lld kv_len=%lld num_heads=%d num_kv_heads=%d head_dim=%d mask=%d scale=%.9g "
                "window=%lld q_pos0=%lld kv_pos0=%lld lse=%s num_threads=%d skip_tolerance=%.9g key_norms=%s slopes=",
                s.batch, static_cast<long long>(s.q_len), static_cast<long long>(s.kv_len), s.num_heads, s.num_kv_heads,
                s.head_dim, static_cast<int>(o.mask), static_cast<double>(o.scale), static_cast<long long>(o.window),
                static_cast<long long>(o.q_pos0), static_cast<long long>(o.kv_pos0), o.lse != nullptr ? "yes" : "no",
                o.num_threads, static_cast<double>(o.skip_tolerance), o.key_norms != nullptr ? "given" : "none");
  std::string result = text;
  if (o.slopes == nullptr || s.num_heads <= 0 || s.num_heads > 64) return result + (o.slopes ? "custom" : "default");
  for (int h = 0; h < s.num_heads; ++h) {
    std::snprintf(text, sizeof text, "%s%.9g", h ? "," : "{", static_cast<double>(o.slopes[h]));
    result += text;
  }
  return result + "}";
}

}  // namespace alibi_reliability
