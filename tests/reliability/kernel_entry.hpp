#pragma once
// Converts a plain Call into this TU's alibi types and calls alibi::attention<Isa>. Included by the
// kernels_<isa>.cpp files only (after alibi/alibi.hpp, with their ISA flags).
#include "call.hpp"

namespace alibi_reliability {

template <class Isa>
void call_attention(const Call& c) {
  alibi::AttentionShape shape;
  shape.batch = c.batch;
  shape.q_len = c.q_len;
  shape.kv_len = c.kv_len;
  shape.num_heads = c.num_heads;
  shape.num_kv_heads = c.num_kv_heads;
  shape.head_dim = c.head_dim;
  alibi::AttentionOptions options;
  options.mask = static_cast<alibi::Mask>(c.mask);
  options.scale = c.scale;
  options.slopes = c.slopes;
  options.window = c.window;
  options.q_pos0 = c.q_pos0;
  options.num_threads = c.num_threads;
  options.skip_tolerance = c.skip_tolerance;
  options.key_norms = c.key_norms;
  alibi::attention<Isa>(c.q, c.k, c.v, c.out, shape, options);
}

}  // namespace alibi_reliability
