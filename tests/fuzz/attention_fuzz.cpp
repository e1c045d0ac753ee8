// libFuzzer target for alibi::attention (issue 5, item 1).
//
// Each input decodes into one attention call: shape, options and tensor values, including NaN, +-inf,
// subnormals, -0.0, huge and tiny scales and slopes, windows, explicit q_pos0 and kv_pos0, the lse output,
// both masks, thread counts,
// skip tolerances, key norm bounds, misaligned tensors, the K/V element type (float, bfloat16 or float16),
// and (about half the time) one deliberate contract violation. The call must then either throw std::invalid_argument,
// exactly when the contract rejects it, leaving `out` bytewise untouched, or produce what tests/reliability/oracle.hpp
// allows: every row whose inputs are finite within the worst-case fp32 error bound of the float64 reference, rows that
// see no key zero. Anything else aborts (libFuzzer reports it as a crash and saves the input).
//
// Built with -fsanitize=fuzzer,address,undefined and -mavx2 -mfma (both the scalar and the AVX2 kernel are
// called); each tensor lives in its own heap block sized exactly, so AddressSanitizer sees any access past
// its end.
//
// 16-bit K/V (issue 11): the library gets k and v as alibi::bfloat16 or alibi::float16 (values rounded from
// the decoded ones, or raw 16-bit patterns: NaN payloads, subnormals, infinities), and the oracle checks the
// output against the exact values of those elements as floats, decoded from the formats' definitions
// (tests/float16_reference.hpp): the contract is the fp32 attention of the converted values. The rules on
// null and overlapping tensors apply to the 16-bit memory (2 bytes per element).
//
// Long runs past a known, already reported library bug: ALIBI_FUZZ_AVOID_KNOWN_BUGS in the environment
// lists the bugs to steer around (comma-separated):
//   fp32_overflow_rows  rows whose logits may leave the float range are only checked for finiteness and
//                       the convex-combination bound (oracle.hpp CheckOptions)
//   window_overflow     window = INT64_MAX becomes INT64_MAX / 2 (the library computed window * 2)
//   nan_dropped         rows that see a NaN may come out finite (a row whose first visited logits are all
//                       NaN gave zeros)
//   tiny_key_norms      calls with keys below 2^-63 in magnitude (squares that underflow in fp32) get
//                       caller key norms from alibi::key_norms, so block skipping does not use the
//                       library's own fp32 bounds (which came out 0 for such keys)
// CI runs with it unset: every finding fails. ALIBI_FUZZ_VERBOSE=1 prints each decoded call.
#include <fuzzer/FuzzedDataProvider.h>

#include <cfloat>
#include <cinttypes>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "../float16_reference.hpp"
#include "../reliability/kernel_entry.hpp"
#include "../reliability/oracle.hpp"
#include "alibi/alibi.hpp"

#if !(defined(__AVX2__) && defined(__FMA__))
#error "build the fuzz target with -mavx2 -mfma so the AVX2 kernel is fuzzed too"
#endif

namespace {

using alibi_reliability::Call;
using alibi_reliability::Verdict;

// Fuzz-size bounds (issue 5): small enough for thousands of calls per second with the oracle.
constexpr int kMaxLen = 40, kMaxHeads = 6, kMaxHeadDim = 24, kMaxBatch = 2;
// Tensors larger than this come only from deliberately oversized shapes, which are never given real memory.
constexpr std::int64_t kMaxRealElements = std::int64_t{kMaxBatch} * kMaxLen * kMaxHeads * kMaxHeadDim;

// Bit pattern `out` is filled with before each call (a quiet NaN no input carries).
constexpr std::uint32_t kSentinelBits = 0x7FC0DEADu;

bool avoiding(const char* bug) {
  const char* list = std::getenv("ALIBI_FUZZ_AVOID_KNOWN_BUGS");
  return list != nullptr && std::strstr(list, bug) != nullptr;
}

// `kernel` names the ISA and the K/V element type of the call.
[[noreturn]] void fail(const Call& call, const std::string& kernel, const std::string& what) {
  std::fprintf(stderr, "\nalibi fuzz: CONTRACT VIOLATION (%s): %s\n  call: %s\n", kernel.c_str(), what.c_str(),
               alibi_reliability::describe(call).c_str());
  std::abort();
}

float from_bits(std::uint32_t bits) {
  float x;
  std::memcpy(&x, &bits, sizeof x);
  return x;
}

float special_value(std::uint8_t selector) {
  const float table[] = {std::numeric_limits<float>::quiet_NaN(),
                         std::numeric_limits<float>::infinity(),
                         -std::numeric_limits<float>::infinity(),
                         -0.0f,
                         FLT_MAX,
                         -FLT_MAX,
                         FLT_TRUE_MIN,
                         -1e-40f,  // subnormal
                         FLT_MIN,
                         1e19f,
                         -1e19f,
                         1e-30f,
                         65504.0f,
                         1.0f,
                         -std::numeric_limits<float>::quiet_NaN()};
  return table[selector % (sizeof table / sizeof table[0])];
}

// A tensor in its own heap block: exactly `count` floats after `data`, so reads past the end are caught;
// `misaligned` puts data one float past the block start (4 mod 16 bytes).
struct Tensor {
  std::unique_ptr<float[]> block;
  float* data = nullptr;
  std::int64_t count = 0;
};

Tensor make_tensor(std::int64_t count, bool misaligned) {
  Tensor t;
  t.count = count;
  t.block.reset(new float[static_cast<std::size_t>(count) + (misaligned ? 1 : 0)]());
  t.data = t.block.get() + (misaligned ? 1 : 0);
  return t;
}

// ---- 16-bit K/V

enum class KvType { f32, bf16, f16 };

const char* kv_type_name(KvType type) {
  return type == KvType::bf16 ? "bfloat16" : type == KvType::f16 ? "float16" : "float";
}

// x rounded to the 16-bit type (the library's conversions only pick the inputs; convert_test.cpp checks them).
std::uint16_t to_16bit(float x, KvType type) {
  return type == KvType::bf16 ? alibi::to_bfloat16(x).bits : alibi::to_float16(x).bits;
}

// The exact value of a 16-bit element, from its format's definition.
float value_of_16bit(std::uint16_t bits, KvType type) {
  return static_cast<float>(type == KvType::bf16 ? alibi_test::decode_bf16(bits) : alibi_test::decode_f16(bits));
}

// A 16-bit tensor in its own heap block, like Tensor; `misaligned` puts data one element (2 bytes) past
// the block start.
struct Tensor16 {
  std::unique_ptr<std::uint16_t[]> block;
  std::uint16_t* data = nullptr;
  std::int64_t count = 0;
};

Tensor16 make_tensor16(std::int64_t count, bool misaligned) {
  Tensor16 t;
  t.count = count;
  t.block.reset(new std::uint16_t[static_cast<std::size_t>(count) + (misaligned ? 1 : 0)]());
  t.data = t.block.get() + (misaligned ? 1 : 0);
  return t;
}

// alibi::attention<Isa> with the call's K/V: c.k and c.v for float, else the 16-bit memory in `kv`.
template <class Isa>
void call_kernel(const Call& c, KvType type, const alibi_reliability::KvArguments& kv) {
  if (type == KvType::bf16)
    alibi_reliability::call_attention<Isa>(c, static_cast<const alibi::bfloat16*>(kv.k),
                                           static_cast<const alibi::bfloat16*>(kv.v));
  else if (type == KvType::f16)
    alibi_reliability::call_attention<Isa>(c, static_cast<const alibi::float16*>(kv.k),
                                           static_cast<const alibi::float16*>(kv.v));
  else
    alibi_reliability::call_attention<Isa>(c);
}

void compute_key_norms(const Call& c, KvType type, const alibi_reliability::KvArguments& kv, float* norms) {
  if (type == KvType::bf16)
    alibi::key_norms(static_cast<const alibi::bfloat16*>(kv.k), c.shape, norms);
  else if (type == KvType::f16)
    alibi::key_norms(static_cast<const alibi::float16*>(kv.k), c.shape, norms);
  else
    alibi::key_norms(c.k, c.shape, norms);
}

// The deliberate contract violations (0 = none); some turn out valid for the decoded shape, which the
// oracle's verdict then says.
// clang-format off
enum Violation : int {
  kNone = 0,
  kNegativeBatch, kNegativeQLen, kNegativeKvLen, kZeroHeads, kNegativeHeads, kZeroKvHeads, kKvHeadsNotDividing,
  kZeroHeadDim, kNegativeHeadDim, kNegativeWindow, kQPos0BelowMinusOne, kQPos0Min, kNegativeThreads,
  kNullQ, kNullK, kNullV, kNullOut, kOutOverlapsQ, kQOverlapsOut, kOutOverlapsK, kOutOverlapsV,
  kHugeQLen, kHugeKvLen, kProductWrapsToZero, kProductJustOverLimit, kQPos0PlusQLenOverflows,
  kMaskOutOfRange, kMaskNegative, kScaleNaN, kScaleInf, kSkipNegative, kSkipNaN, kSkipInf, kSlopeNonFinite,
  kKvPos0Negative, kKvPos0PlusKvLenOverflows, kLseOverlapsQ, kLseOverlapsOut,
  kViolationCount
};
// clang-format on

struct Stats {
  std::uint64_t calls = 0, rejected = 0, accepted = 0, rows = 0, rows_checked = 0, rows_nonfinite = 0,
                rows_tolerated = 0, nonfinite_inputs = 0;
  double worst_ratio = 0.0;
  ~Stats() {
    if (calls == 0) return;
    std::fprintf(stderr,
                 "alibi fuzz summary: %" PRIu64 " calls (%" PRIu64 " rejected as the contract requires, %" PRIu64
                 " accepted), %" PRIu64 " output rows: %" PRIu64 " accuracy-checked, %" PRIu64
                 " with non-finite inputs, %" PRIu64 " tolerated near fp32 overflow; %" PRIu64
                 " calls with NaN/inf inputs; worst error / allowed = %.3g\n",
                 calls, rejected, accepted, rows, rows_checked, rows_nonfinite, rows_tolerated, nonfinite_inputs,
                 worst_ratio);
  }
};
Stats g_stats;

void run_one(FuzzedDataProvider& in) {
  // ---- shape and options
  const auto flags = in.ConsumeIntegral<std::uint16_t>();
  const bool use_avx2 = flags & 1;
  const bool misaligned = flags & 2;
  const bool raw_values = (flags & 0x1C) == 0x1C;  // 1 in 8: every value from raw bytes (4, or 2 for 16-bit K/V)
  const bool custom_slopes = flags & 0x20;
  const int key_norm_mode = (flags >> 6) & 3;  // 0 none, 1 alibi::key_norms, 2 corrupted, 3 doubled
  const bool null_empty_tensors = flags & 0x100;
  const int kv_selector = (flags >> 9) & 3;  // 0 and 3 float, 1 bfloat16, 2 float16
  const KvType kv_type = kv_selector == 1 ? KvType::bf16 : kv_selector == 2 ? KvType::f16 : KvType::f32;
  const int kv_pos0_mode = (flags >> 11) & 7;  // issue 12: 0-3 key row 0 at 0, else a shard further on
  const bool want_lse = flags & 0x8000;        // issue 12: ask for the log-sum-exp too
  const bool kv16 = kv_type != KvType::f32;
  const std::string kernel = std::string(use_avx2 ? "avx2" : "scalar") + " kernel, " + kv_type_name(kv_type) + " K/V";

  Call c;
  c.shape.batch = in.ConsumeIntegralInRange(0, kMaxBatch);
  c.shape.q_len = in.ConsumeIntegralInRange(0, kMaxLen);
  c.shape.kv_len = in.ConsumeIntegralInRange(0, kMaxLen);
  c.shape.num_kv_heads = in.ConsumeIntegralInRange(1, kMaxHeads);
  c.shape.num_heads = c.shape.num_kv_heads * in.ConsumeIntegralInRange(1, kMaxHeads / c.shape.num_kv_heads);
  c.shape.head_dim = in.ConsumeIntegralInRange(1, kMaxHeadDim);
  c.options.mask = in.ConsumeBool() ? alibi::Mask::bidirectional : alibi::Mask::causal;
  {
    const auto w = in.ConsumeIntegral<std::uint8_t>();
    c.options.window = w < 128    ? 0
                       : w < 250  ? w % 45
                       : w == 250 ? INT64_MAX
                       : w == 251 ? (std::int64_t{1} << 40)
                                  : w - 250;
    if (c.options.window == INT64_MAX && avoiding("window_overflow")) c.options.window = INT64_MAX / 2;
  }
  {
    const auto p = in.ConsumeIntegral<std::uint8_t>();
    c.options.q_pos0 = p < 128    ? -1
                       : p < 240  ? p % 90
                       : p == 240 ? INT64_MAX - c.shape.q_len
                       : p == 241 ? (std::int64_t{1} << 40)
                       : p == 242 ? 0x1000000 + p
                       : p == 243 ? c.shape.kv_len
                                  : c.shape.kv_len + (p - 243);
  }
  // Key row 0's position (issue 12): with the default q_pos0 the queries move along with the keys; an
  // explicit q_pos0 then lands before, inside or after the shard.
  c.options.kv_pos0 = kv_pos0_mode < 4    ? 0
                      : kv_pos0_mode == 4 ? 1 + c.shape.q_len % 7
                      : kv_pos0_mode == 5 ? 37
                      : kv_pos0_mode == 6 ? (std::int64_t{1} << 40)
                                          : INT64_MAX - c.shape.kv_len;
  c.options.num_threads = in.ConsumeIntegralInRange(0, 2);
  {
    const auto s = in.ConsumeIntegral<std::uint8_t>();
    const float table[] = {0.0f,  -0.0f, 1.0f,         0.5f,   -1.0f,   1e-3f,  1e3f, 1e-30f,
                           1e30f, 3e38f, FLT_TRUE_MIN, -1e19f, FLT_MAX, 0.125f, 8.0f, 1e6f};
    c.options.scale = s < 96 ? 0.0f : s < 240 ? table[s % 16] : from_bits(in.ConsumeIntegral<std::uint32_t>());
  }
  {
    const auto t = in.ConsumeIntegral<std::uint8_t>();
    const float table[] = {0x1p-24f, 0.0f, 1e-7f, 1e-5f, 1e-3f, 0.1f, 10.0f, FLT_MAX, -0.0f, FLT_TRUE_MIN};
    c.options.skip_tolerance = t < 128 ? 0x1p-24f : table[t % 10];
  }
  std::vector<float> slopes;
  if (custom_slopes) {
    const float table[] = {0.5f, 0.0625f, 0.0f,  -0.0f,  -0.5f,  1.0f,         4.0f,    100.0f,
                           1e4f, 1e30f,   3e38f, -3e38f, -1e30f, FLT_TRUE_MIN, 0x1p-8f, 20.0f};
    for (int h = 0; h < c.shape.num_heads; ++h) slopes.push_back(table[in.ConsumeIntegral<std::uint8_t>() % 16]);
  }
  const auto violation = static_cast<Violation>(in.ConsumeIntegralInRange(0, 2 * kViolationCount) % kViolationCount *
                                                (in.ConsumeBool() ? 1 : 0));
  const auto violation_detail = in.ConsumeIntegral<std::uint8_t>();

  // Shape violations first: the tensors are sized from the final shape.
  // clang-format off
  switch (violation) {
    case kNegativeBatch: c.shape.batch = -1 - violation_detail % 3; break;
    case kNegativeQLen: c.shape.q_len = -1 - violation_detail; break;
    case kNegativeKvLen: c.shape.kv_len = violation_detail % 2 ? -1 : INT64_MIN; break;
    case kZeroHeads: c.shape.num_heads = 0; break;
    case kNegativeHeads: c.shape.num_heads = -c.shape.num_heads; break;
    case kZeroKvHeads: c.shape.num_kv_heads = 0; break;
    case kKvHeadsNotDividing: c.shape.num_kv_heads = c.shape.num_heads + 1 + violation_detail % 3; break;
    case kZeroHeadDim: c.shape.head_dim = 0; break;
    case kNegativeHeadDim: c.shape.head_dim = violation_detail % 2 ? -1 : INT_MIN; break;
    case kNegativeWindow: c.options.window = violation_detail % 2 ? -1 : INT64_MIN; break;
    case kQPos0BelowMinusOne: c.options.q_pos0 = -2 - violation_detail; break;
    case kQPos0Min: c.options.q_pos0 = INT64_MIN; break;
    case kNegativeThreads: c.options.num_threads = -1 - violation_detail % 2; break;
    case kHugeQLen: c.shape.q_len = INT64_MAX / (1 + violation_detail % 4); break;
    case kHugeKvLen: c.shape.kv_len = INT64_MAX / (1 + violation_detail % 4); break;
    case kProductWrapsToZero:  // 2^32 * 2^16 * 2^16 = 2^64: zero in 64-bit unsigned arithmetic
      c.shape.q_len = std::int64_t{1} << 32, c.shape.num_kv_heads = 1;
      c.shape.num_heads = 1 << 16, c.shape.head_dim = 1 << 16;
      if (c.shape.batch == 0) c.shape.batch = 1;
      break;
    case kProductJustOverLimit:  // PTRDIFF_MAX / 4 + 1 elements: fits in int64, its byte count does not
      c.shape.batch = 1, c.shape.num_heads = c.shape.num_kv_heads = 1, c.shape.head_dim = 1;
      (violation_detail % 2 ? c.shape.q_len : c.shape.kv_len) = PTRDIFF_MAX / 4 + 1;
      if (violation_detail % 2 == 0 && c.shape.q_len == 0) c.shape.q_len = 1;
      break;
    case kQPos0PlusQLenOverflows:  // q_pos0 in (INT64_MAX - q_len, INT64_MAX]
      if (c.shape.q_len == 0) c.shape.q_len = 1;
      c.options.q_pos0 = INT64_MAX - c.shape.q_len + 1 + violation_detail % c.shape.q_len;
      break;
    case kMaskOutOfRange: c.options.mask = static_cast<alibi::Mask>(2 + violation_detail); break;
    case kMaskNegative: c.options.mask = static_cast<alibi::Mask>(-1); break;
    case kScaleNaN: c.options.scale = std::numeric_limits<float>::quiet_NaN(); break;
    case kScaleInf: c.options.scale = violation_detail % 2 ? HUGE_VALF : -HUGE_VALF; break;
    case kSkipNegative: c.options.skip_tolerance = violation_detail % 2 ? -1e-3f : -FLT_TRUE_MIN; break;
    case kSkipNaN: c.options.skip_tolerance = std::numeric_limits<float>::quiet_NaN(); break;
    case kSkipInf: c.options.skip_tolerance = HUGE_VALF; break;
    case kKvPos0Negative: c.options.kv_pos0 = violation_detail % 2 ? -1 - violation_detail : INT64_MIN; break;
    case kKvPos0PlusKvLenOverflows:  // kv_pos0 in (INT64_MAX - kv_len, INT64_MAX]
      if (c.shape.kv_len == 0) c.shape.kv_len = 1;
      c.options.kv_pos0 = INT64_MAX - c.shape.kv_len + 1 + violation_detail % c.shape.kv_len;
      break;
    case kSlopeNonFinite:
      if (slopes.empty()) slopes = alibi_reliability::contract_slopes(std::max(1, c.shape.num_heads));
      slopes[violation_detail % slopes.size()] = special_value(violation_detail % 3);  // NaN, +inf, -inf
      break;
    default: break;
  }
  // clang-format on
  // A caller always passes num_heads slopes (the library may read them all before rejecting a call).
  if (!slopes.empty() && c.shape.num_heads > static_cast<int>(slopes.size()))
    slopes.resize(static_cast<std::size_t>(c.shape.num_heads), 0.5f);
  if (!slopes.empty()) c.options.slopes = slopes.data();

  const alibi_reliability::int128 q_count128 = alibi_reliability::q_elements(c);
  const alibi_reliability::int128 kv_count128 = alibi_reliability::kv_elements(c);
  const bool real_memory =
      q_count128 >= 0 && kv_count128 >= 0 && q_count128 <= kMaxRealElements && kv_count128 <= kMaxRealElements;
  // Oversized or negative shapes get small stand-in tensors: validation must reject before any access.
  const std::int64_t q_count = real_memory ? static_cast<std::int64_t>(q_count128) : 16;
  const std::int64_t kv_count = real_memory ? static_cast<std::int64_t>(kv_count128) : 16;

  // ---- tensors (q, k, v, then one block for out; the overlap violations share a block). With 16-bit K/V,
  // k16 and v16 are what the library reads, and k and v hold their exact values for the oracle.
  Tensor q = make_tensor(q_count, misaligned), k = make_tensor(kv_count, misaligned),
         v = make_tensor(kv_count, misaligned);
  Tensor16 k16, v16;
  if (kv16) k16 = make_tensor16(kv_count, misaligned), v16 = make_tensor16(kv_count, misaligned);
  Tensor out_block;
  float* out = nullptr;
  const std::int64_t shift = 1 + violation_detail % std::max<std::int64_t>(1, std::min(q_count, kv_count));
  switch (violation) {
    case kOutOverlapsQ:  // out starts inside q
    case kQOverlapsOut:  // q starts inside out
      out_block = make_tensor(q_count + shift, misaligned);
      q = Tensor{};
      q.count = q_count;
      if (violation == kOutOverlapsQ) {
        q.data = out_block.data;
        out = out_block.data + std::min(shift, std::max<std::int64_t>(0, q_count - 1));
      } else {
        out = out_block.data;
        q.data = out_block.data + std::min(shift, std::max<std::int64_t>(0, q_count - 1));
      }
      break;
    case kOutOverlapsK:
    case kOutOverlapsV: {
      // k or v starts where out's block does, out `shift` floats later: with 16-bit K/V (2 bytes per
      // element) that is an overlap only when 4 * shift < 2 * kv_count, so some of these calls are valid.
      out_block = make_tensor(kv_count + q_count, misaligned);
      if (kv16) {
        Tensor16& shared = violation == kOutOverlapsK ? k16 : v16;
        shared = Tensor16{};
        shared.count = kv_count;
        shared.data = reinterpret_cast<std::uint16_t*>(out_block.data);
      } else {
        Tensor& shared = violation == kOutOverlapsK ? k : v;
        shared = Tensor{};
        shared.count = kv_count;
        shared.data = out_block.data;
      }
      out = out_block.data + std::min(shift, std::max<std::int64_t>(0, kv_count - 1));
      break;
    }
    default:
      out_block = make_tensor(q_count, misaligned);
      out = out_block.data;
  }

  // lse (issue 12): its own block, or one overlapping q or out (a rejected call must not write it).
  const std::int64_t lse_count = real_memory ? q_count / std::max(1, c.shape.head_dim) : 4;
  Tensor lse_block;
  if (violation == kLseOverlapsQ && q_count > 0) {
    c.options.lse = q.data + violation_detail % q_count;
    if (c.options.lse + lse_count > q.data + q_count) c.options.lse = q.data;
  } else if (violation == kLseOverlapsOut && q_count > 0) {
    c.options.lse = out + violation_detail % q_count;
    if (c.options.lse + lse_count > out_block.data + out_block.count) c.options.lse = out;
  } else if (want_lse) {
    lse_block = make_tensor(lse_count, misaligned);
    c.options.lse = lse_block.data;
  }

  // ---- values: a per-tensor magnitude, small integers from the input, then special values
  auto magnitude = [&]() {
    // |int8 / 16| <= 2^3, so 2^124 keeps every value finite.
    const int table[] = {-149, -140, -130, -126, -100, -64, -20, 20, 40, 60, 63, 64, 100, 110, 120, 124};
    const auto selector = in.ConsumeIntegral<std::uint8_t>();
    return selector < 160 ? 0 : table[selector % 16];
  };
  const int exponent[3] = {magnitude(), magnitude(), magnitude()};
  struct Special {
    int tensor;
    std::uint16_t index;
    std::uint8_t value;
  };
  std::vector<Special> specials(in.ConsumeIntegralInRange(0, 6));
  for (Special& s : specials) {
    s.tensor = in.ConsumeIntegralInRange(0, 2);
    s.index = in.ConsumeIntegral<std::uint16_t>();
    s.value = in.ConsumeIntegral<std::uint8_t>();
  }
  float* tensors[3] = {q.data, k.data, v.data};
  std::uint16_t* tensors16[3] = {nullptr, k16.data, v16.data};  // the 16-bit K/V the library reads
  const std::int64_t counts[3] = {q_count, kv_count, kv_count};
  // The overlap cases share storage; only fill what each tensor owns outright.
  const bool owns[3] = {violation != kOutOverlapsQ && violation != kQOverlapsOut, violation != kOutOverlapsK,
                        violation != kOutOverlapsV};
  bool any_nonfinite = false;
  for (int t = 0; t < 3; ++t) {
    if (!owns[t]) continue;
    for (std::int64_t n = 0; n < counts[t]; ++n) {
      if (tensors16[t] != nullptr) {
        // 16-bit patterns cannot match the sentinel: a widened NaN has its low 13 bits zero.
        tensors16[t][n] =
            raw_values
                ? in.ConsumeIntegral<std::uint16_t>()
                : to_16bit(std::ldexp(static_cast<float>(in.ConsumeIntegral<std::int8_t>()) / 16.0f, exponent[t]),
                           kv_type);
        continue;
      }
      float x;
      if (raw_values) {
        std::uint32_t bits = in.ConsumeIntegral<std::uint32_t>();
        // No NaN whose quieted form (arithmetic sets the quiet bit) is the sentinel.
        if (((bits | 0x00400000u) & 0x7FFFFFFFu) == (kSentinelBits & 0x7FFFFFFFu)) bits ^= 1u;
        x = from_bits(bits);
      } else {
        x = std::ldexp(static_cast<float>(in.ConsumeIntegral<std::int8_t>()) / 16.0f, exponent[t]);
      }
      tensors[t][n] = x;
    }
  }
  for (const Special& s : specials) {
    if (!owns[s.tensor] || counts[s.tensor] == 0) continue;
    const std::int64_t n = s.index % counts[s.tensor];
    if (tensors16[s.tensor] != nullptr)
      tensors16[s.tensor][n] = to_16bit(special_value(s.value), kv_type);
    else
      tensors[s.tensor][n] = special_value(s.value);
  }
  // The oracle's copies of 16-bit K/V: every element, also of a tensor sharing out's block (whatever it holds).
  for (int t = 1; t < 3 && kv16; ++t)
    for (std::int64_t n = 0; n < counts[t]; ++n) {
      std::uint16_t bits;
      std::memcpy(&bits, tensors16[t] + n, sizeof bits);
      tensors[t][n] = value_of_16bit(bits, kv_type);
    }
  for (int t = 0; t < 3; ++t)
    for (std::int64_t n = 0; (owns[t] || (kv16 && t > 0)) && n < counts[t]; ++n)
      any_nonfinite |= !std::isfinite(tensors[t][n]);

  c.q = q.data;
  c.k = k.data;
  c.v = v.data;
  c.out = out;
  if (null_empty_tensors && real_memory) {  // null is valid for an empty tensor
    if (q_count == 0) c.q = nullptr, c.out = nullptr;
    if (kv_count == 0) c.k = nullptr, c.v = nullptr;
  }
  // clang-format off
  switch (violation) {
    case kNullQ: c.q = nullptr; break;
    case kNullK: c.k = nullptr; break;
    case kNullV: c.v = nullptr; break;
    case kNullOut: c.out = nullptr; break;
    default: break;
  }
  // clang-format on
  // The k and v the library gets (null where c.k, c.v are).
  alibi_reliability::KvArguments kv_args{c.k, c.v, static_cast<int>(sizeof(float))};
  if (kv16) {
    kv_args.k = c.k != nullptr ? tensors16[1] : nullptr;
    kv_args.v = c.v != nullptr ? tensors16[2] : nullptr;
    kv_args.element_bytes = static_cast<int>(sizeof(std::uint16_t));
  }

  // ---- the oracle's verdict
  std::string reason;
  const Verdict verdict = alibi_reliability::expected_verdict(c, kv_args, &reason);
  if (verdict != Verdict::reject && !real_memory && q_count128 > 0) return;  // valid but too big to run

  std::vector<float> key_norms;
  bool tiny_keys = false;
  for (std::int64_t n = 0; n < kv_count && owns[1]; ++n)
    tiny_keys |= k.data[n] != 0.0f && std::fabs(k.data[n]) < 0x1p-63f;
  const int norms_mode = key_norm_mode == 0 && tiny_keys && avoiding("tiny_key_norms") ? 1 : key_norm_mode;
  if (verdict == Verdict::accept && real_memory && norms_mode != 0 && kv_count > 0) {
    key_norms.resize(static_cast<std::size_t>(c.shape.batch * c.shape.kv_len * c.shape.num_kv_heads));
    compute_key_norms(c, kv_type, kv_args, key_norms.data());
    for (std::size_t n = 0; n < key_norms.size(); ++n) {
      if (norms_mode == 3) key_norms[n] *= 2.0f;  // looser bounds are still bounds
      if (norms_mode == 2 && (n + violation_detail) % 3 == 0) {
        const float unbounded[] = {std::numeric_limits<float>::quiet_NaN(), -1.0f, HUGE_VALF, -0.0f};
        // -0.0 is a valid bound only for a zero key; the others mean "unbounded" by the documented rule.
        const float replacement = unbounded[(n / 3) % 4];
        if (replacement == 0.0f && key_norms[n] != 0.0f) continue;
        key_norms[n] = replacement;
      }
    }
    c.options.key_norms = key_norms.data();
  }

  // ---- the call
  std::vector<unsigned char> out_before;
  if (out_block.data != nullptr && out_block.count > 0) {
    for (std::int64_t n = 0; n < out_block.count; ++n)
      if (!(violation >= kOutOverlapsQ && violation <= kOutOverlapsV)) out_block.data[n] = from_bits(kSentinelBits);
    const auto* bytes = reinterpret_cast<const unsigned char*>(out_block.data);
    out_before.assign(bytes, bytes + out_block.count * static_cast<std::int64_t>(sizeof(float)));
  }
  std::vector<unsigned char> lse_before;
  if (lse_block.data != nullptr && lse_block.count > 0) {
    for (std::int64_t n = 0; n < lse_block.count; ++n) lse_block.data[n] = from_bits(kSentinelBits);
    const auto* bytes = reinterpret_cast<const unsigned char*>(lse_block.data);
    lse_before.assign(bytes, bytes + lse_block.count * static_cast<std::int64_t>(sizeof(float)));
  }
  std::vector<float> inputs_before[3];
  std::vector<std::uint16_t> inputs16_before[3];
  for (int t = 0; t < 3; ++t) {
    if (!owns[t]) continue;
    if (tensors[t] != nullptr) inputs_before[t].assign(tensors[t], tensors[t] + counts[t]);
    if (tensors16[t] != nullptr) inputs16_before[t].assign(tensors16[t], tensors16[t] + counts[t]);
  }

  if (std::getenv("ALIBI_FUZZ_VERBOSE") != nullptr)
    std::fprintf(stderr, "alibi fuzz: %s, %s%s, %s values%s: %s\n", kernel.c_str(),
                 verdict == Verdict::reject   ? "expect rejection: "
                 : verdict == Verdict::either ? "may reject"
                                              : "expect success",
                 reason.c_str(), raw_values ? "raw" : "decoded", any_nonfinite ? " with NaN/inf" : "",
                 alibi_reliability::describe(c).c_str());
  ++g_stats.calls;
  g_stats.nonfinite_inputs += any_nonfinite;
  bool threw = false;
  std::string message;
  try {
    if (use_avx2)
      call_kernel<alibi::isa::avx2>(c, kv_type, kv_args);
    else
      call_kernel<alibi::isa::scalar>(c, kv_type, kv_args);
  } catch (const std::invalid_argument& e) {
    threw = true;
    message = e.what();
  } catch (const std::exception& e) {
    fail(c, kernel, std::string("threw something other than std::invalid_argument: ") + e.what());
  }

  // ---- what the contract requires
  if (!out_before.empty() && (threw || verdict == Verdict::reject) &&
      std::memcmp(out_before.data(), out_block.data, out_before.size()) != 0)
    fail(c, kernel, "a rejected call wrote to out (" + reason + ")");
  if (!lse_before.empty() && (threw || verdict == Verdict::reject) &&
      std::memcmp(lse_before.data(), lse_block.data, lse_before.size()) != 0)
    fail(c, kernel, "a rejected call wrote to lse (" + reason + ")");
  for (int t = 0; t < 3; ++t) {
    if (!inputs_before[t].empty() &&
        std::memcmp(inputs_before[t].data(), tensors[t], inputs_before[t].size() * sizeof(float)) != 0)
      fail(c, kernel, "the call modified an input tensor");
    if (!inputs16_before[t].empty() &&
        std::memcmp(inputs16_before[t].data(), tensors16[t], inputs16_before[t].size() * sizeof(std::uint16_t)) != 0)
      fail(c, kernel, "the call modified a 16-bit input tensor");
  }
  if (verdict == Verdict::reject) {
    if (!threw) fail(c, kernel, "accepted a call the contract rejects: " + reason);
    if (message.find("alibi::attention") == std::string::npos)
      fail(c, kernel, "the exception message does not name the function: " + message);
    ++g_stats.rejected;
    return;
  }
  if (threw && verdict == Verdict::accept) fail(c, kernel, "rejected a valid call: " + message);
  if (threw) {
    ++g_stats.rejected;
    return;
  }
  ++g_stats.accepted;
  if (q_count128 == 0) return;
  for (std::int64_t n = 0; n < q_count; ++n) {
    std::uint32_t bits;
    std::memcpy(&bits, out + n, sizeof bits);
    if (bits == kSentinelBits) fail(c, kernel, "out[" + std::to_string(n) + "] was never written");
  }
  for (std::int64_t n = 0; c.options.lse != nullptr && n < lse_count; ++n) {
    std::uint32_t bits;
    std::memcpy(&bits, c.options.lse + n, sizeof bits);
    if (bits == kSentinelBits) fail(c, kernel, "lse[" + std::to_string(n) + "] was never written");
  }
  alibi_reliability::CheckOptions options;
  options.tolerate_fp32_overflow_rows = avoiding("fp32_overflow_rows");
  options.require_nan_propagation = !avoiding("nan_dropped");
  alibi_reliability::CheckStats stats;
  const std::string problem = alibi_reliability::check_output(c, out, options, &stats);
  g_stats.rows += static_cast<std::uint64_t>(stats.rows);
  g_stats.rows_checked += static_cast<std::uint64_t>(stats.rows_accuracy_checked);
  g_stats.rows_nonfinite += static_cast<std::uint64_t>(stats.rows_nonfinite_inputs);
  g_stats.rows_tolerated += static_cast<std::uint64_t>(stats.rows_tolerated_overflow);
  g_stats.worst_ratio = std::max(g_stats.worst_ratio, stats.worst_ratio);
  if (!problem.empty()) fail(c, kernel, problem);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzedDataProvider in(data, size);
  run_one(in);
  return 0;
}
