#pragma once
// alibi::attention<Isa> on a Call. Included by the kernels_<isa>.cpp files (and the fuzz target), built
// with their ISA flags.
#include "alibi/attention.hpp"
#include "call.hpp"

namespace alibi_reliability {

template <class Isa>
void call_attention(const Call& c) {
  alibi::attention<Isa>(c.q, c.k, c.v, c.out, c.shape, c.options);
}

// The call with K/V of another element type (alibi::bfloat16 or alibi::float16) in place of c.k and c.v.
template <class Isa, class KV>
void call_attention(const Call& c, const KV* k, const KV* v) {
  alibi::attention<Isa>(c.q, k, v, c.out, c.shape, c.options);
}

}  // namespace alibi_reliability
