// How one attention call is cut into work: units of rows, key blocks, split-K pieces and the thread count.
// Every tuning constant of the kernel is here, with the measurement that chose it in bench/RESULTS.md.
//
// A unit is (batch, group of kv heads, block of query positions). Its rows are ordered kv head, position,
// query head of the group. Decode-like calls (few rows per kv head) put several kv heads in one unit: key j
// of all of them is one contiguous run of memory, so a block then reads whole pages instead of one head's
// slice of each (a slice per 4 KiB page would miss the TLB on every key). Keys are reduced in chunks at
// multiples of kKvChunk merged in key order (kernels/partials.hpp); split-K makes each chunk of a unit its
// own piece of work. Every decision that shapes a row's arithmetic (blocks, chunks, the order of merges)
// depends on the shape alone, never on num_threads or on skipping, so the arithmetic is the same for every
// thread count and skipping never changes a row it may not skip; the thread count only chooses which kv
// heads share a unit (Note [decode across threads]).
#include "alibi/detail/config.hpp"
// Per-target header: no #pragma once (Note [per-target headers] in detail/config.hpp).
#if (ALIBI_PASS == 0 && !defined(ALIBI_KERNELS_PLAN_HPP_0)) || \
    (ALIBI_PASS == 1 && !defined(ALIBI_KERNELS_PLAN_HPP_1)) || (ALIBI_PASS == 2 && !defined(ALIBI_KERNELS_PLAN_HPP_2))
#if ALIBI_PASS == 0
#define ALIBI_KERNELS_PLAN_HPP_0
#elif ALIBI_PASS == 1
#define ALIBI_KERNELS_PLAN_HPP_1
#else
#define ALIBI_KERNELS_PLAN_HPP_2
#endif
#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "alibi/detail/config.hpp"
#include "alibi/detail/problem.hpp"
#include "alibi/detail/test_hooks.hpp"
#include "alibi/isa/cpu_vendor.hpp"
#include "alibi/isa/ops.hpp"

ALIBI_NAMESPACE_BEGIN
namespace kernels {

struct Tuning {
  // Floats per 64-byte cache line.
  static constexpr std::int64_t kLineFloats = 64 / sizeof(float);
  // Keys per block: S^T of a unit (64 x 144 floats) stays in L1/L2 next to the packed block. Blocks are
  // aligned to multiples of it from key 0 whatever the unit (Note [batch invariance] in unit_worker.hpp).
  static constexpr int kKeyBlock = 64;
  // Rows (query position x head) a unit aims for: enough to amortise packing each K/V block and the
  // per-block bookkeeping over many rows, while a unit's Qs^T, O and packed block stay within L2. A
  // multiple of every ISA's Q.K group (24 rows AVX2, 48 AVX-512).
  static constexpr int kTargetRows = 144;
  // Key chunks: a row whose keys span several multiples of kKvChunk is reduced chunk by chunk and the
  // chunks merged (Note [batch invariance] in unit_worker.hpp). Calls with fewer units than
  // kSplitBelowUnits, at most kMaxSplitRows rows per unit and at least two chunks run each chunk of a unit
  // as its own piece of work (split-K); the others reduce a unit's chunks one after another.
  static constexpr std::int64_t kSplitBelowUnits = 8;
  static constexpr std::int64_t kMaxSplitRows = 256;
  static constexpr std::int64_t kKvChunk = 2048;
  // Below this many FLOPs a call runs on the calling thread: starting a team costs tens of microseconds.
  static constexpr double kSingleThreadFlops = 4e6;
  // Keys per block of the skipping bounds (kernels/skipping.hpp).
  static constexpr std::int64_t kNormBlock = 64;
  // Streaming decode (kernels/unit_worker.hpp, Note [streaming decode]): kv heads with at most this many
  // rows (and at most a vector's lanes) read K and V where they lie, in the same kKeyBlock blocks as the
  // packed path (block boundaries fix the summation order: Note [batch invariance]); up to 16 rows rather
  // than 4 (Zen 5, 2026-12-04 twentieth session, AVX-512, 16384 keys: 8 rows per kv head 27-40 % less time
  // than the packed path, 16 rows 0-10 %), their P.V kStreamPvRows rows at a time (4 with 16 registers).
  // Each group of keys requests the next group's K/V as it computes when a key of the unit's heads is less
  // than kStreamPrefetchBelow bytes of K (bench/RESULTS.md,
  // 2026-12-01 fifth session, 8 kv heads of 128: bfloat16 K/V from 41 to 31 ms; fp32, a 4 KiB page per
  // key, from 48 to 51 ms, where the hardware prefetchers alone do better). With 8-lane vectors a group is
  // 8 keys, and there the requests pay for fp32 too (Zen 5, 2026-12-02 eighth session: 8 kv heads of 128,
  // 43.8 to 33.6 ms contiguous, 57.5 to 37.1 ms in shuffled pages of 16; AVX-512 unchanged).
  // On AMD cores they pay at any width for 16-bit K/V (Zen 5, 2026-12-04 eighteenth session: AVX-512
  // bfloat16, 8 kv heads of 128, 18.0 ms with against 25.4 without), but not for fp32 on 16-lane vectors
  // once K/V start on a cache line (same session: 31.6 ms without against 34.3-38.7 with, two threads 16.5
  // against 19.6; 16 bytes off a line the two were within 3 %).
  // A paged cache whose pages are no longer than a block breaks the runs the hardware prefetchers follow,
  // so its calls request ahead whatever the key size; when a group's K is more than kStreamPrefetchL1Bytes (more
  // than half of L1D) it goes to L2 instead of L1 (Sapphire-Rapids-class Xeon, 2026-12-02 ninth session:
  // AVX-512 fp32, pages of 16, 82.7 to 67.9 ms; requesting into L1 there, or for contiguous K/V, was slower).
  static constexpr int kStreamMaxRows = 16;
  static constexpr int kStreamPvRows = 8;
  // At most this many output vectors per row in a streaming P.V pass (the widths with_count instantiates).
  static constexpr int kStreamPvMaxVecs = 8;
  static constexpr std::int64_t kStreamPrefetchBelow = 4096;
  static constexpr std::int64_t kStreamPrefetchBelowNarrow = 8192;  // vectors of at most 8 floats; 16-bit K/V on AMD
  // 16-bit K/V on vectors of at most 8 floats pay for requests with longer keys too: multi-head attention
  // (one kv head per query head, as BLOOM, MPT, Falcon-RW and Baichuan have) puts every head in one unit
  // (Zen 5, 2026-12-05 twenty-third session, AVX2, bfloat16, q_len 1, heads of 128: 32 heads (8 KiB keys)
  // 0.83-0.88 of the time without, two threads 0.90; 40 heads 0.83; 64 heads (16 KiB) 0.84-0.93; 112 heads
  // (28 KiB) 0.92-1.09. fp32 with 8-16 KiB keys: 0.93-1.08. AVX-512 with 8 KiB bfloat16 keys: 1.22-1.30).
  static constexpr std::int64_t kStreamPrefetchBelowNarrow16Bit = 24 * 1024;
  static constexpr std::int64_t kStreamPrefetchL1Bytes = 32 * 1024;
  // Page pairs (Note [page pairs] in kernels/unit_worker.hpp): when a key of the unit's heads is half of a
  // kPageBytes page, vectors of at least kStreamPairMinLanes lanes take a group's even keys, then its odd
  // ones, and leave K to the hardware prefetchers (Sapphire-Rapids-class Xeon, 2026-12-03 twelfth session:
  // AVX-512, bfloat16, 8 kv heads of 128, 65536 keys, 33.2 to 31.6 ms; no change on 8-lane AVX2, or for
  // fp32 with 2 KiB keys; slower with 1 KiB keys, four to a page). Not on AMD cores, where reading the keys in
  // order with K requested too is faster (Zen 5, 2026-12-03 fifteenth session: the same decode 20.5 to
  // 17.5 ms, two threads 10.6 to 9.1, shuffled pages of 16 21.5 to 18.0).
  static constexpr std::int64_t kPageBytes = 4096;
  static constexpr int kStreamPairMinLanes = 16;
  // Keys nearest a row whose exact logits give the lower bound on its max that skipping starts from
  // (kernels/skipping.hpp): enough to find the large nearby logit ALiBi favours, cheap next to one block.
  static constexpr std::int64_t kFloorKeys = 16;
};

struct UnitLayout {
  std::int64_t positions;  // query positions per unit
  int heads;               // kv heads per unit
  std::int64_t q_blocks;   // query blocks per (batch, head group)
  int head_groups;         // kv head groups per batch entry
  int group;               // query heads per kv head
};

struct UnitCoords {
  std::int64_t b, i0, i1;  // batch entry, query rows [i0, i1)
  int kv_head0, kv_heads;  // kv heads [kv_head0, kv_head0 + kv_heads)
};

template <class Isa>
struct Plan {
  static constexpr int W = simd::Ops<Isa>::width;
  // Vectors of at least 8 lanes: keys in lanes fill whole vectors of S per row, where rows in lanes would
  // leave most lanes idle (a streaming kv head has at most a vector's lanes of rows, Plan::streams).
  static constexpr bool can_stream = W >= 8;
  // Rows of a streaming P.V tile: room for at least three output vectors per row next to the values.
  static constexpr int stream_pv_rows =
      simd::Ops<Isa>::registers >= 32 ? Tuning::kStreamPvRows : Tuning::kStreamPvRows / 2;

  UnitLayout layout;
  bool stream;                    // streaming decode: K/V read in place, no packing
  bool stream_prefetch;           // streaming decode: request the next group of keys while computing one
  bool stream_prefetch_to_l2;     // ... with K into L2 rather than L1 (V always goes to L2)
  bool stream_prefetch_at_jumps;  // ... only groups whose keys do not follow the last one's in memory
  bool stream_key_pairs;          // ... Q.K over a group's even keys, then its odd keys, and only V requested
  int rows_per_head;              // real rows per kv head of a full unit
  int block_keys;                 // keys per block
  int head_rows;                  // rows per kv head, padded to whole vectors (Note [rows in lanes])
  int dim_vecs;                   // vectors per head_dim row
  std::int64_t dim_pad;           // head_dim padded to whole vectors
  std::int64_t pack_stride;       // floats between packed K/V rows
  std::int64_t base_units;        // units before any split of the keys
  std::int64_t kv_chunk;          // keys per chunk; 0: one chunk (kv_len <= Tuning::kKvChunk)
  std::int64_t chunks;            // chunks of the keys
  bool split;                     // split-K: a piece of work per (unit, chunk), merged afterwards
  std::int64_t rows_per_unit;     // real rows of a full unit, without lane padding
  double flops;                   // estimated, of the visible keys
  int threads;

  // Note [narrower vectors]: some calls run faster on the ISA's half-width vectors (Ops::narrower), when
  // those stream too:
  // - a decode over at most half a vector of keys (a 1-token prompt, the first steps of a conversation)
  //   would transpose mostly padding keys and carry padding rows through every per-row loop;
  // - a streaming decode over a paged cache whose pages are no longer than a block, where a group of W keys
  //   of the unit's heads is more K than half of L1D but a group of W / 2 keys is not: requested ahead into
  //   L1 rather than L2 (kStreamPrefetchL1Bytes), the narrower groups keep up with the jumps between pages.
  //   Not on AMD cores, whose full-width groups over pages of 16 keep up better (bench/RESULTS.md, Zen 5,
  //   2026-12-03 sixteenth session).
  // The result is the same bits: every (row, key) product is one FMA chain over d whatever the width (Note
  // [keys in lanes] in kernels/unit_worker.hpp), the softmax and P.V fold keys in key order, and the
  // skipping bounds are summed in the narrower vectors on both (KeyNormBounds), so every call gives the
  // same bits on either width (bench/RESULTS.md, 2026-12-02 tenth session: AVX-512, 1 key 11.5 -> 9.2 us,
  // 8 keys 13.0 -> 11.0 us, the widths break even near 11 keys; eleventh session: fp32, 8 kv heads of 128,
  // pages of 16, 65536 keys).
  // kv_element_bytes: sizeof the K/V element type; sequences: of the call pr is one of (team_threads).
  static bool prefers_narrower(const detail::Problem& pr, int kv_element_bytes, std::int64_t sequences = 1) {
    using Narrower = typename simd::Ops<Isa>::narrower;
    constexpr int narrower_width = simd::Ops<Narrower>::width;
    if (std::is_same<Narrower, Isa>::value || test_hooks::full_width_only) return false;
    const UnitLayout layout = make_layout(pr, team_threads(pr, sequences));
    if (!streams(layout) || !Plan<Narrower>::streams(layout)) return false;
    if (2 * pr.kv_len <= W) return true;
    const std::int64_t bytes_per_key = key_bytes(pr, layout, kv_element_bytes);
    return short_pages(pr) && (!on_amd_core() || test_hooks::narrower_pages_always) &&
           W * bytes_per_key > Tuning::kStreamPrefetchL1Bytes &&
           narrower_width * bytes_per_key <= Tuning::kStreamPrefetchL1Bytes;
  }

  std::int64_t pieces() const { return split ? base_units * chunks : base_units; }
  // Floats of partial state per chunk of a unit: per row, max and sum then the padded output row.
  std::int64_t partial_floats_per_piece() const { return rows_per_unit * (2 + dim_pad); }

  // kv_element_bytes: sizeof the K/V element type; sequences: of the call pr is one of (team_threads).
  static Plan make(const detail::Problem& pr, int kv_element_bytes, std::int64_t sequences = 1) {
    Plan p;
    p.layout = make_layout(pr, team_threads(pr, sequences));
    const UnitLayout& L = p.layout;
    p.rows_per_head = static_cast<int>(rows_per_head_of(L));
    p.stream = streams(L);
    p.block_keys = Tuning::kKeyBlock;
    const std::int64_t bytes_per_key = key_bytes(pr, L, kv_element_bytes);
    const bool amd = on_amd_core();
    const bool sixteen_bit = kv_element_bytes < 4;
    std::int64_t prefetch_below = Tuning::kStreamPrefetchBelow;
    if (W <= 8)
      prefetch_below = sixteen_bit ? Tuning::kStreamPrefetchBelowNarrow16Bit : Tuning::kStreamPrefetchBelowNarrow;
    else if (amd && sixteen_bit)
      prefetch_below = Tuning::kStreamPrefetchBelowNarrow;
    // Short pages turn requests on where the contiguous cache runs without them; a group of keys that
    // continues the last one in memory (pages allocated in order) then reads as the contiguous cache does
    // (Note [requests at page jumps] in kernels/unit_worker.hpp).
    const bool contiguous_requests = bytes_per_key < prefetch_below;
    p.stream_prefetch = p.stream && (contiguous_requests || short_pages(pr));
    p.stream_prefetch_at_jumps = p.stream_prefetch && !contiguous_requests;
    p.stream_prefetch_to_l2 = p.stream_prefetch && W * bytes_per_key > Tuning::kStreamPrefetchL1Bytes;
    const bool pairs_wanted = !test_hooks::no_key_pairs && (!amd || test_hooks::key_pairs_always);
    p.stream_key_pairs =
        p.stream && W >= Tuning::kStreamPairMinLanes && 2 * bytes_per_key == Tuning::kPageBytes && pairs_wanted;
    p.head_rows = static_cast<int>((rows_per_head_of(L) + W - 1) / W * W);
    p.dim_vecs = static_cast<int>((static_cast<std::int64_t>(pr.head_dim) + W - 1) / W);
    p.dim_pad = static_cast<std::int64_t>(p.dim_vecs) * W;
    p.pack_stride = packed_row_stride(pr.head_dim);
    p.base_units = base_units_of(pr, L);
    p.rows_per_unit = rows_per_unit_of(L);
    p.chunks = chunks_of(pr);
    p.kv_chunk = p.chunks > 1 ? Tuning::kKvChunk : 0;
    p.split = splits(pr, L);
    // The output does not depend on the thread count, so tiny calls (one decode token over a short cache)
    // run on the calling thread.
    p.flops = estimated_flops(pr);
    p.threads = threads_for(p.flops, pr.num_threads);
    return p;
  }

  // The threads that may share the pieces of pr: those of the call (threads_for), or one when pr is one of
  // `sequences` sequences of a ragged batch with at least a sequence per thread.
  static int team_threads(const detail::Problem& pr, std::int64_t sequences) {
    const int threads = threads_for(estimated_flops(pr), pr.num_threads);
    return sequences >= threads ? 1 : threads;
  }

  UnitCoords coords(const detail::Problem& pr, std::int64_t unit) const {
    const UnitLayout& L = layout;
    UnitCoords u;
    // Last query blocks first: under the causal mask they are the longest, which balances the threads.
    const std::int64_t block = L.q_blocks - 1 - unit % L.q_blocks;
    const std::int64_t rest = unit / L.q_blocks;
    u.kv_head0 = static_cast<int>(rest % L.head_groups) * L.heads;
    u.kv_heads = std::min(L.heads, pr.num_kv_heads - u.kv_head0);
    u.b = rest / L.head_groups;
    u.i0 = block * L.positions;
    u.i1 = std::min(pr.q_len, u.i0 + L.positions);
    return u;
  }

  // The calling thread alone below Tuning::kSingleThreadFlops (a team costs tens of microseconds to start).
  static int threads_for(double flops, int num_threads) {
    const double single_thread_flops =
        test_hooks::single_thread_flops >= 0.0 ? test_hooks::single_thread_flops : Tuning::kSingleThreadFlops;
    return flops < single_thread_flops ? 1 : num_threads;
  }

 private:
  // The decode's memory tuning differs by CPU vendor (isa/cpu_vendor.hpp): the reads and requests, never the bits.
  static bool on_amd_core() { return simd::running_cpu_vendor() == simd::CpuVendor::amd; }
  // Units stream (Note [streaming decode]) with at most kStreamMaxRows rows per kv head.
  static bool streams(const UnitLayout& L) {
    const std::int64_t rows_per_head = rows_per_head_of(L);
    return can_stream && rows_per_head <= Tuning::kStreamMaxRows && rows_per_head <= W;
  }
  // Real rows (query position x query head) per kv head, and per full unit.
  static std::int64_t rows_per_head_of(const UnitLayout& L) { return L.positions * L.group; }
  static std::int64_t rows_per_unit_of(const UnitLayout& L) { return rows_per_head_of(L) * L.heads; }
  // Bytes of K of one key of a unit's kv heads.
  static std::int64_t key_bytes(const detail::Problem& pr, const UnitLayout& L, int kv_element_bytes) {
    return static_cast<std::int64_t>(L.heads) * pr.head_dim * kv_element_bytes;
  }
  // A paged cache with pages no longer than a block: every block starts on a jump in memory, where the
  // hardware prefetchers, which bring a contiguous cache's next block in while the current one computes,
  // lose their runs (bench/RESULTS.md, 2026-12-03 thirteenth session: AVX-512 fp32 with 8 kv heads of 128
  // over pages of 64 keys 76 ms on full-width vectors, 60 ms on narrower ones; pages of 128: 56.6 vs 60.6).
  static bool short_pages(const detail::Problem& pr) {
    return pr.block_table != nullptr && pr.page_size <= Tuning::kKeyBlock;
  }
  template <class>
  friend struct Plan;

  // FLOPs of the visible keys.
  static double estimated_flops(const detail::Problem& pr) {
    const double kv = static_cast<double>(pr.kv_len);
    const double visible = pr.window > 0 ? std::min(2.0 * static_cast<double>(pr.window), kv) : kv;
    return 4.0 * static_cast<double>(pr.batch * pr.q_len * pr.num_heads) * visible * pr.head_dim;
  }
  static std::int64_t chunks_of(const detail::Problem& pr) {
    return pr.kv_len > Tuning::kKvChunk ? (pr.kv_len + Tuning::kKvChunk - 1) / Tuning::kKvChunk : 1;
  }
  static std::int64_t base_units_of(const detail::Problem& pr, const UnitLayout& L) {
    return pr.batch * L.head_groups * L.q_blocks;
  }
  // Split-K (Tuning::kSplitBelowUnits).
  static bool splits(const detail::Problem& pr, const UnitLayout& L) {
    return base_units_of(pr, L) < Tuning::kSplitBelowUnits && rows_per_unit_of(L) <= Tuning::kMaxSplitRows &&
           pr.kv_len >= 2 * Tuning::kKvChunk;
  }
  static std::int64_t pieces_of(const detail::Problem& pr, const UnitLayout& L) {
    return splits(pr, L) ? base_units_of(pr, L) * chunks_of(pr) : base_units_of(pr, L);
  }

  // team_threads: the threads that may share the problem's pieces.
  static UnitLayout make_layout(const detail::Problem& pr, int team_threads) {
    constexpr int kTargetRows = Tuning::kTargetRows;
    UnitLayout L;
    L.group = pr.num_heads / pr.num_kv_heads;
    L.positions = std::max<std::int64_t>(1, std::min<std::int64_t>(pr.q_len, std::max(1, kTargetRows / L.group)));
    const std::int64_t rows_per_head = rows_per_head_of(L);
    L.heads =
        static_cast<int>(std::min<std::int64_t>(pr.num_kv_heads, (kTargetRows + rows_per_head - 1) / rows_per_head));
    L.q_blocks = (pr.q_len + L.positions - 1) / L.positions;
    L.head_groups = (pr.num_kv_heads + L.heads - 1) / L.heads;
    // Note [decode across threads]: a decode-like call puts every kv head in one unit, so below 2 kKvChunk
    // keys (no split-K) a single sequence is one piece of work, which one thread runs however many the call
    // has. With fewer pieces than threads the kv heads go to more units, as few as give each thread a
    // piece (a unit's heads read each key's K/V as one run; fewer heads per unit read shorter runs, slower from
    // memory: bench/RESULTS.md, 2026-12-05 twenty-fourth session). Which heads share a unit never changes a
    // row's arithmetic, so every thread count still gives the same bits.
    if (team_threads > 1 && streams(L)) {
      for (int groups = L.head_groups + 1; pieces_of(pr, L) < team_threads && L.heads > 1; ++groups) {
        L.heads = (pr.num_kv_heads + groups - 1) / groups;
        L.head_groups = (pr.num_kv_heads + L.heads - 1) / L.heads;
      }
    }
    return L;
  }

  // Whole vectors, and an odd number of 64-byte lines. A power-of-two stride would put a block's slice of
  // every row into the same few L1 sets; the P.V tiles re-read that slice for every row tile.
  static std::int64_t packed_row_stride(int head_dim) {
    constexpr std::int64_t kLineFloats = Tuning::kLineFloats;
    const std::int64_t lines = (static_cast<std::int64_t>(head_dim) + kLineFloats - 1) / kLineFloats;
    return (lines % 2 == 1 ? lines : lines + 1) * kLineFloats;
  }
};

}  // namespace kernels
ALIBI_NAMESPACE_END
#endif  // per-target guard
