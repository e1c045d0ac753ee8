#pragma once
// Attention for serving engines: ragged batches of sequences (FlashAttention's cu_seqlens) and paged K/V
// caches (vLLM's block tables), with the dense call's arithmetic per sequence.
#include <cstdint>

#include "alibi/detail/config.hpp"
#include "alibi/detail/require_isa.hpp"
#include "alibi/isa/tags.hpp"
#include "alibi/kernels/serving_call.hpp"
#include "alibi/types.hpp"

ALIBI_NAMESPACE_BEGIN

/// Attention over a ragged batch: sequence s has query rows [q_offsets[s], q_offsets[s + 1]) of
///   q, out: [total_q][num_heads][head_dim]  (total_q = q_offsets[num_seqs])
/// and keys kv_start_s .. kv_start_s + kv_lens[s] - 1 (kv_start_s = kv_lens[0] + ... + kv_lens[s - 1]) of
///   k, v:   [total_kv][num_kv_heads][head_dim],
/// its queries being the last q_len_s positions of its keys (prefill, chunked prefill and decode
/// sequences mix freely). Every option applies to every sequence, except that options.q_pos0 must be -1
/// and options.kv_pos0 0; options.lse is [total_q][num_heads]; options.key_norms is [total_kv][num_kv_heads]
/// (alibi::key_norms of each sequence's keys, packed the same way).
///
/// Each sequence's out and lse are bitwise those of alibi::attention on that sequence alone (batch 1),
/// for any num_threads and whatever else is in the batch. The sequences' work shares one thread team,
/// the most expensive sequences first.
///
/// @throws std::invalid_argument (naming the field), nothing written to out or lse, for: num_seqs < 0,
///         null q_offsets or kv_lens with num_seqs > 0, q_offsets[0] != 0 or decreasing, kv_lens < 0, sizes
///         that overflow, q_pos0 != -1, kv_pos0 != 0, and everything alibi::attention rejects (heads,
///         head_dim, options, null tensors, out or lse overlapping an input).
template <class Isa = isa::native, class KV>
void attention_varlen(const float* q, const KV* k, const KV* v, float* out, const SeqBatch& batch,
                      const AttentionOptions& options = {}) {
  detail::require_isa<Isa>();
  kernels::attention_varlen<Isa>(q, k, v, out, batch, options);
}

/// fp32 K/V; also takes a literal nullptr for k or v (no keys).
template <class Isa = isa::native>
void attention_varlen(const float* q, const float* k, const float* v, float* out, const SeqBatch& batch,
                      const AttentionOptions& options = {}) {
  detail::require_isa<Isa>();
  kernels::attention_varlen<Isa>(q, k, v, out, batch, options);
}

/// attention_varlen with the keys of sequence s in a paged cache: key j is slot j % page_size of page
/// block_table[s * max_pages_per_seq + j / page_size] of cache.k_pages / cache.v_pages
/// ([num_pages][page_size][num_kv_heads][head_dim]). Only the first ceil(kv_lens[s] / page_size) entries of
/// a sequence's block-table row are read (and checked); pages may be shared between sequences.
/// options.key_norms, for block skipping, follows the pages: [num_pages][page_size][num_kv_heads], the
/// bound of the key in that slot (alibi::key_norms of a page, with kv_len = page_size; a cache appending
/// a key appends its norm to the same slot). Slots no sequence uses are never read.
///
/// Bitwise equal to attention_varlen on the same keys gathered contiguously, for any page_size (every
/// read goes key by key through the block table, so page boundaries never change the arithmetic).
///
/// @throws std::invalid_argument as attention_varlen, and for page_size < 1, num_pages < 0,
///         max_pages_per_seq < 0, a null block_table when some sequence has keys, a block-table entry a
///         sequence uses outside [0, num_pages), a sequence needing more than max_pages_per_seq pages, or
///         out/lse overlapping the pages or the block table. Nothing is written then.
template <class Isa = isa::native, class KV>
void attention_paged(const float* q, const PagedKV<KV>& cache, float* out, const SeqBatch& batch,
                     const AttentionOptions& options = {}) {
  detail::require_isa<Isa>();
  kernels::attention_paged<Isa>(q, cache, out, batch, options);
}

ALIBI_NAMESPACE_END
