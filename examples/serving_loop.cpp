// A tiny serving loop over a paged bfloat16 KV cache. Requests arrive with prompts of different lengths,
// are prefilled in chunks, then decode one token per step and finish after different numbers of generated
// tokens. Every step is ONE alibi::attention_paged call over a ragged batch that mixes the prefill chunks of
// newly arrived sequences with the single-token decodes of running ones.
//
// Random q, k and v stand in for the model: a real engine computes them from the tokens (embedding and
// projection layers) and samples the next token from the attention output; the cache bookkeeping and the
// attention call are the same.
//
// The cache (one attention layer): a pool of pages of 16 token slots for K and for V, held as bfloat16, with
// a free list; each active sequence owns a list of pages, its row of the block table. A new token's K/V rows
// are rounded into their page slot with alibi::convert, and its key norms stored in the same slot of a
// norms pool, so block skipping never reads the keys it skips. A finished sequence returns its pages to the
// free list, and later sequences reuse them; freed pages are filled with NaN to show that slots past a
// sequence's length are never read.
//
// --check compares every step's output, bit for bit, with one dense alibi::attention call per sequence on
// its keys gathered into contiguous arrays (the library's contract), and exits 1 on any difference.
//
//   alibi_serving_loop [--check] [requests=24] [max_prompt=300] [max_new=40]
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <deque>
#include <limits>
#include <random>
#include <vector>

#include "alibi/alibi.hpp"
#include "example_support.hpp"

namespace {

// One attention layer of a small grouped-query model: 8 query heads on 2 kv heads of 64 dimensions.
constexpr int kHeads = 8;
constexpr int kKvHeads = 2;
constexpr int kHeadDim = 64;
constexpr std::int64_t kQueryWidth = kHeads * kHeadDim;  // floats of q (or out) per token
constexpr std::int64_t kKvWidth = kKvHeads * kHeadDim;   // elements of K (or V) per token

constexpr int kPageSize = 16;               // token slots per page (vLLM's default block size)
constexpr std::int64_t kPrefillChunk = 64;  // prompt tokens a sequence feeds per step (chunked prefill)

std::size_t size(std::int64_t n) {
  return static_cast<std::size_t>(n);
}

std::int64_t pages_for(std::int64_t tokens) {
  return (tokens + kPageSize - 1) / kPageSize;
}

struct Request {
  int id = 0;
  std::int64_t arrival_step = 0;
  std::int64_t prompt_tokens = 0;
  std::int64_t new_tokens = 0;  // tokens to generate; the last one is returned, never fed back

  // Tokens whose K/V the cache ever holds: the prompt and every generated token but the last.
  std::int64_t max_cached_tokens() const { return prompt_tokens + new_tokens - 1; }
};

// Requests with random lengths, arriving 0 to 3 steps apart.
std::vector<Request> make_requests(int count, std::int64_t max_prompt, std::int64_t max_new) {
  std::mt19937 rng(2026);
  std::uniform_int_distribution<std::int64_t> prompt(1, max_prompt), generated(1, max_new), gap(0, 3);
  std::vector<Request> requests(size(count));
  std::int64_t step = 0;
  for (int i = 0; i < count; ++i) {
    step += gap(rng);
    requests[size(i)] = Request{i, step, prompt(rng), generated(rng)};
  }
  return requests;
}

// The shape of one token's keys, for alibi::key_norms.
alibi::AttentionShape one_token() {
  alibi::AttentionShape shape;
  shape.q_len = 1;
  shape.kv_len = 1;
  shape.num_heads = kHeads;
  shape.num_kv_heads = kKvHeads;
  shape.head_dim = kHeadDim;
  return shape;
}

// The page pool: K and V as alibi::PagedKV reads them ([num_pages][kPageSize][kv heads][head_dim]), the key
// norms as options.key_norms reads them for a paged cache ([num_pages][kPageSize][kv heads]), a free list.
class PagePool {
 public:
  explicit PagePool(std::int64_t num_pages)
      : k_(size(num_pages * kPageSize * kKvWidth), alibi::to_bfloat16(std::numeric_limits<float>::quiet_NaN())),
        v_(k_),
        key_norms_(size(num_pages * kPageSize * kKvHeads), std::numeric_limits<float>::quiet_NaN()),
        ever_used_(size(num_pages), false),
        num_pages_(num_pages) {
    for (std::int64_t page = num_pages - 1; page >= 0; --page) free_.push_back(static_cast<std::int32_t>(page));
  }

  std::int64_t num_pages() const { return num_pages_; }
  std::int64_t free_pages() const { return static_cast<std::int64_t>(free_.size()); }
  std::int64_t reuses() const { return reuses_; }

  std::int32_t allocate() {
    const std::int32_t page = free_.back();  // the caller reserved it (see admit() in main)
    free_.pop_back();
    if (ever_used_[size(page)]) ++reuses_;
    ever_used_[size(page)] = true;
    return page;
  }

  // Back to the free list, poisoned: a kernel reading a slot it should not would now produce NaN.
  void release(std::vector<std::int32_t>& pages) {
    const alibi::bfloat16 nan = alibi::to_bfloat16(std::numeric_limits<float>::quiet_NaN());
    for (std::int32_t page : pages) {
      const std::int64_t first = page * std::int64_t{kPageSize};
      std::fill_n(k_.begin() + static_cast<std::ptrdiff_t>(first * kKvWidth), kPageSize * kKvWidth, nan);
      std::fill_n(v_.begin() + static_cast<std::ptrdiff_t>(first * kKvWidth), kPageSize * kKvWidth, nan);
      std::fill_n(key_norms_.begin() + static_cast<std::ptrdiff_t>(first * kKvHeads), kPageSize * kKvHeads,
                  std::numeric_limits<float>::quiet_NaN());
      free_.push_back(page);
    }
    pages.clear();
  }

  // Token `position` of a sequence whose block-table row is `pages` lives in this slot of the pool.
  static std::int64_t slot(const std::vector<std::int32_t>& pages, std::int64_t position) {
    return pages[size(position / kPageSize)] * std::int64_t{kPageSize} + position % kPageSize;
  }

  // Rounds one token's fp32 K/V rows into their slot and stores the norms of the rounded keys.
  void store(std::int64_t slot, const float* k_row, const float* v_row) {
    alibi::bfloat16* k = &k_[size(slot * kKvWidth)];
    alibi::convert(k_row, k, size(kKvWidth));
    alibi::convert(v_row, &v_[size(slot * kKvWidth)], size(kKvWidth));
    alibi::key_norms(k, one_token(), &key_norms_[size(slot * kKvHeads)]);
  }

  alibi::PagedKV<alibi::bfloat16> view(const std::int32_t* block_table, std::int64_t max_pages_per_seq) const {
    alibi::PagedKV<alibi::bfloat16> cache;
    cache.k_pages = k_.data();
    cache.v_pages = v_.data();
    cache.num_pages = num_pages_;
    cache.page_size = kPageSize;
    cache.block_table = block_table;
    cache.max_pages_per_seq = max_pages_per_seq;
    return cache;
  }
  const float* key_norms() const { return key_norms_.data(); }
  const alibi::bfloat16* k_at(std::int64_t slot) const { return &k_[size(slot * kKvWidth)]; }
  const alibi::bfloat16* v_at(std::int64_t slot) const { return &v_[size(slot * kKvWidth)]; }
  const float* key_norms_at(std::int64_t slot) const { return &key_norms_[size(slot * kKvHeads)]; }

 private:
  std::vector<alibi::bfloat16> k_, v_;
  std::vector<float> key_norms_;
  std::vector<std::int32_t> free_;
  std::vector<bool> ever_used_;
  std::int64_t num_pages_ = 0;
  std::int64_t reuses_ = 0;
};

// A request being served.
struct Sequence {
  Request request;
  std::vector<std::int32_t> pages;  // its block-table row
  std::int64_t cached = 0;          // tokens whose K/V are in the cache
  std::int64_t generated = 0;       // tokens produced so far
  std::int64_t step_tokens = 0;     // tokens it feeds in the current step

  bool in_prefill() const { return cached < request.prompt_tokens; }
  bool finished() const { return generated == request.new_tokens; }
  // Pages it may still take from the pool before it finishes.
  std::int64_t pages_to_come() const {
    return pages_for(request.max_cached_tokens()) - static_cast<std::int64_t>(pages.size());
  }
};

// The dense reference for one sequence of the step: its keys and key norms gathered slot by slot into
// contiguous arrays, one alibi::attention call (batch 1, the step's queries on its last positions).
bool matches_dense(const PagePool& pool, const Sequence& seq, const float* q, const float* out,
                   const alibi::AttentionOptions& paged_options) {
  std::vector<alibi::bfloat16> k(size(seq.cached * kKvWidth)), v(k.size());
  std::vector<float> norms(size(seq.cached * kKvHeads));
  for (std::int64_t position = 0; position < seq.cached; ++position) {
    const std::int64_t slot = PagePool::slot(seq.pages, position);
    std::copy_n(pool.k_at(slot), kKvWidth, &k[size(position * kKvWidth)]);
    std::copy_n(pool.v_at(slot), kKvWidth, &v[size(position * kKvWidth)]);
    std::copy_n(pool.key_norms_at(slot), kKvHeads, &norms[size(position * kKvHeads)]);
  }
  alibi::AttentionShape shape = one_token();
  shape.q_len = seq.step_tokens;
  shape.kv_len = seq.cached;
  alibi::AttentionOptions options = paged_options;
  options.key_norms = norms.data();
  options.num_threads = 1;  // the output is the same bits for any thread count
  std::vector<float> dense(size(seq.step_tokens * kQueryWidth));
  alibi::attention(q, k.data(), v.data(), dense.data(), shape, options);
  return std::memcmp(dense.data(), out, dense.size() * sizeof(float)) == 0;
}

}  // namespace

int main(int argc, char** argv) {
  const char* usage = "[--check] [requests=24] [max_prompt=300] [max_new=40]";
  const bool check = argc > 1 && std::strcmp(argv[1], "--check") == 0;
  const int first_count = check ? 2 : 1;
  const int request_count = static_cast<int>(example::count_argument(argc, argv, first_count, 24, 1, usage));
  const std::int64_t max_prompt = example::count_argument(argc, argv, first_count + 1, 300, 1, usage);
  const std::int64_t max_new = example::count_argument(argc, argv, first_count + 2, 40, 1, usage);
  if (!example::cpu_runs_this_build()) return 2;

  const std::vector<Request> requests = make_requests(request_count, max_prompt, max_new);
  // The block table has a fixed width: enough pages for the longest request allowed. The pool holds about
  // four such requests, so sequences wait for pages and reuse the pages of finished ones.
  const std::int64_t max_pages_per_seq = pages_for(max_prompt + max_new - 1);
  PagePool pool(4 * max_pages_per_seq);

  std::printf(
      "one layer, %d query heads on %d kv heads, head_dim %d, ISA %s; bfloat16 K/V in %lld pages of %d "
      "tokens\n%d requests (prompts 1-%lld tokens, prefilled %lld per step; 1-%lld new tokens)%s\n",
      kHeads, kKvHeads, kHeadDim, alibi::isa::native::name, static_cast<long long>(pool.num_pages()), kPageSize,
      request_count, static_cast<long long>(max_prompt), static_cast<long long>(kPrefillChunk),
      static_cast<long long>(max_new), check ? "; checking every step against dense calls" : "");

  std::deque<Request> waiting;
  std::vector<Sequence> active;
  std::size_t next_arrival = 0;
  std::int64_t pages_promised = 0;  // pages the active sequences may still take
  std::int64_t steps = 0, calls = 0, rows_total = 0, mismatches = 0;
  double attention_seconds = 0.0;
  alibi::AttentionOptions options;  // causal, default slopes and skipping, all threads
  options.key_norms = pool.key_norms();

  for (std::int64_t step = 0; next_arrival < requests.size() || !waiting.empty() || !active.empty(); ++step) {
    // 1. Arrivals queue up; the oldest waiting requests are admitted while the pool can hold them in full
    //    on top of what the running sequences may still take (so no sequence is ever preempted).
    while (next_arrival < requests.size() && requests[next_arrival].arrival_step <= step)
      waiting.push_back(requests[next_arrival++]);
    while (!waiting.empty()) {
      const std::int64_t need = pages_for(waiting.front().max_cached_tokens());
      if (pool.free_pages() - pages_promised < need) break;
      Sequence seq;
      seq.request = waiting.front();
      waiting.pop_front();
      pages_promised += need;
      active.push_back(seq);
    }
    if (active.empty()) continue;  // nothing to run until the next arrival

    // 2. The batch: each sequence feeds its next prompt chunk (prefill) or the token it generated last step
    //    (decode). Its query rows follow the previous sequence's; its keys are all its cached tokens.
    const std::int64_t num_seqs = static_cast<std::int64_t>(active.size());
    std::vector<std::int64_t> q_offsets(size(num_seqs + 1), 0), kv_lens(size(num_seqs));
    std::vector<std::int32_t> block_table(size(num_seqs * max_pages_per_seq), -1);  // -1: never read
    std::int64_t prefills = 0;
    for (std::int64_t s = 0; s < num_seqs; ++s) {
      Sequence& seq = active[size(s)];
      seq.step_tokens = seq.in_prefill() ? std::min(kPrefillChunk, seq.request.prompt_tokens - seq.cached) : 1;
      prefills += seq.in_prefill() ? 1 : 0;
      q_offsets[size(s + 1)] = q_offsets[size(s)] + seq.step_tokens;
    }
    const std::int64_t rows = q_offsets[size(num_seqs)];

    // 3. The model stand-in: q, k and v of the step's tokens.
    const std::vector<float> q = example::random_floats(size(rows * kQueryWidth), static_cast<unsigned>(3 * step));
    const std::vector<float> k = example::random_floats(size(rows * kKvWidth), static_cast<unsigned>(3 * step + 1));
    const std::vector<float> v = example::random_floats(size(rows * kKvWidth), static_cast<unsigned>(3 * step + 2));

    // 4. Append the new tokens' K/V to the cache, taking a page from the pool whenever a page fills up.
    for (std::int64_t s = 0; s < num_seqs; ++s) {
      Sequence& seq = active[size(s)];
      for (std::int64_t row = q_offsets[size(s)]; row < q_offsets[size(s + 1)]; ++row) {
        if (seq.cached % kPageSize == 0) {
          seq.pages.push_back(pool.allocate());
          --pages_promised;
        }
        pool.store(PagePool::slot(seq.pages, seq.cached), &k[size(row * kKvWidth)], &v[size(row * kKvWidth)]);
        ++seq.cached;
      }
      kv_lens[size(s)] = seq.cached;
      std::copy(seq.pages.begin(), seq.pages.end(),
                block_table.begin() + static_cast<std::ptrdiff_t>(s * max_pages_per_seq));
    }

    // 5. One attention call for the whole step.
    alibi::SeqBatch batch;
    batch.num_seqs = num_seqs;
    batch.q_offsets = q_offsets.data();
    batch.kv_lens = kv_lens.data();
    batch.num_heads = kHeads;
    batch.num_kv_heads = kKvHeads;
    batch.head_dim = kHeadDim;
    std::vector<float> out(size(rows * kQueryWidth));
    attention_seconds += example::seconds([&] {
      alibi::attention_paged(q.data(), pool.view(block_table.data(), max_pages_per_seq), out.data(), batch, options);
    });
    ++calls;
    rows_total += rows;

    if (check) {
      for (std::int64_t s = 0; s < num_seqs; ++s) {
        const std::size_t first = size(q_offsets[size(s)] * kQueryWidth);
        if (!matches_dense(pool, active[size(s)], &q[first], &out[first], options)) {
          ++mismatches;
          std::printf("  step %lld, request %d: paged output differs from the dense call\n",
                      static_cast<long long>(step), active[size(s)].request.id);
        }
      }
    }

    std::printf(
        "step %3lld: %2lld prefill chunks + %2lld decodes = %4lld query rows; pages in use %3lld/%lld, "
        "%zu waiting\n",
        static_cast<long long>(step), static_cast<long long>(prefills), static_cast<long long>(num_seqs - prefills),
        static_cast<long long>(rows), static_cast<long long>(pool.num_pages() - pool.free_pages()),
        static_cast<long long>(pool.num_pages()), waiting.size());

    // 6. A sequence whose prompt is now cached in full produces a token from its last row (a model would
    //    sample it from `out`); one that has produced all its tokens finishes and frees its pages.
    for (Sequence& seq : active) {
      if (seq.in_prefill()) continue;
      ++seq.generated;
      if (seq.finished()) {
        pages_promised -= seq.pages_to_come();
        std::printf("  request %d finished: %lld prompt + %lld generated tokens, %zu pages freed\n", seq.request.id,
                    static_cast<long long>(seq.request.prompt_tokens), static_cast<long long>(seq.generated),
                    seq.pages.size());
        pool.release(seq.pages);
      }
    }
    active.erase(std::remove_if(active.begin(), active.end(), [](const Sequence& seq) { return seq.finished(); }),
                 active.end());
    steps = step + 1;
  }

  std::printf(
      "%d requests served in %lld steps (%lld attention calls, %lld query rows, %.3f ms per call); "
      "pages reused %lld times\n",
      request_count, static_cast<long long>(steps), static_cast<long long>(calls), static_cast<long long>(rows_total),
      calls > 0 ? attention_seconds / static_cast<double>(calls) * 1e3 : 0.0, static_cast<long long>(pool.reuses()));
  if (!check) return 0;
  std::printf("%s\n", mismatches == 0 ? "OK: every step bitwise equal to dense calls per sequence" : "MISMATCH");
  return mismatches == 0 ? 0 : 1;
}
