// 64-bit indexing (issue 5, item 2): sizes whose products pass 2^31 and 2^32 work, and sizes whose
// element counts overflow std::ptrdiff_t or std::size_t are rejected before any memory is touched.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "alibi/alibi.hpp"
#include "support.hpp"

namespace alibi_reliability {
namespace {

class Indexing : public KernelTest {};

constexpr std::int64_t kTwoTo(int n) {
  return std::int64_t{1} << n;
}
ALIBI_INSTANTIATE_FOR_KERNELS(Indexing);

// Runs the call and checks the whole output against the oracle (which computes each row from its visible
// keys only, so a 70000 x 70000 problem with a small window is cheap to check in full).
void run_and_check(const Kernel& kernel, Problem& p) {
  ASSERT_NO_THROW(kernel.attention(p.call)) << describe(p.call);
  CheckStats stats;
  const std::string problem = check_output(p.call, p.call.out, {}, &stats);
  EXPECT_EQ(problem, "") << describe(p.call);
  EXPECT_EQ(stats.rows, p.call.shape.batch * p.call.shape.q_len * p.call.shape.num_heads);
}

// q_len x kv_len = 4.9e9 > 2^32: any position or offset computed in 32 bits would wrap.
TEST_P(Indexing, LongSequenceSmallCausalWindow) {
  ALIBI_SKIP_UNLESS_CPU();
  ShapeSpec s;
  s.q_len = s.kv_len = 70000;
  s.window = 3;
  Problem p = make_problem(s, 1);
  run_and_check(GetParam(), p);
  // Spot checks written out by hand from the contract: row 0 sees only key 0, so out = v[0]; row i >= 2
  // sees keys i-2, i-1, i with weights proportional to exp(scale q_i k_j - m (i - j)), m = 2^-8.
  EXPECT_EQ(p.call.out[0], p.call.v[0]);
  for (std::int64_t i : {std::int64_t{2}, std::int64_t{46341}, std::int64_t{65537}, std::int64_t{69999}}) {
    double weight_sum = 0.0, acc = 0.0;
    for (std::int64_t j = i - 2; j <= i; ++j) {
      const double w = std::exp(double(p.call.q[i]) * p.call.k[j] - std::ldexp(1.0, -8) * double(i - j));
      weight_sum += w;
      acc += w * p.call.v[j];
    }
    EXPECT_NEAR(p.call.out[i], acc / weight_sum, 1e-5 * (1.0 + std::fabs(acc / weight_sum))) << "row " << i;
  }
}

TEST_P(Indexing, LongSequenceSmallBidirectionalWindowGroupedQuery) {
  ALIBI_SKIP_UNLESS_CPU();
  ShapeSpec s;
  s.q_len = s.kv_len = quick_mode() ? 40000 : 70000;
  s.num_heads = 2;
  s.num_kv_heads = 1;
  s.mask = Mask::bidirectional;
  s.window = 2;
  s.num_threads = 2;
  Problem p = make_problem(s, 2);
  p.call.options.skip_tolerance = 0.0f;
  run_and_check(GetParam(), p);
}

// Decode against a long cache with no skipping: the split-K path (fixed key chunks merged in order).
TEST_P(Indexing, DecodeAgainstLongCache) {
  ALIBI_SKIP_UNLESS_CPU();
  ShapeSpec s;
  s.q_len = 2;
  s.kv_len = 70000;
  s.num_heads = 4;
  s.num_kv_heads = 2;
  s.head_dim = 8;
  s.num_threads = 2;
  Problem p = make_problem(s, 3);
  p.call.options.skip_tolerance = 0.0f;
  run_and_check(GetParam(), p);
}

// Query positions past 2^32: which keys a row sees must come from exact 64-bit positions. A tiny slope
// keeps the fp32 bias error small, so the oracle's bound stays tight and a wrong visible set shows.
TEST_P(Indexing, PositionsBeyond32Bits) {
  ALIBI_SKIP_UNLESS_CPU();
  const std::int64_t q_pos0 = (std::int64_t{1} << 33) + 5;
  for (Mask mask : {Mask::causal, Mask::bidirectional})
    for (std::int64_t window : {std::int64_t{0}, q_pos0 - 149, std::int64_t{7}}) {
      ShapeSpec s;
      s.q_len = 3, s.kv_len = 300, s.num_heads = s.num_kv_heads = 2, s.head_dim = 4;
      s.mask = mask, s.q_pos0 = q_pos0, s.window = window;
      Problem p = make_problem(s, 4);
      p.slopes = {1e-9f, -1e-9f};
      p.call.options.slopes = p.slopes.data();
      SCOPED_TRACE(describe(p.call));
      run_and_check(GetParam(), p);
      if (window == 7) {  // 2^33 away from every key: nothing visible, rows are zeros
        for (std::int64_t n = 0; n < p.q_count(); ++n) ASSERT_EQ(p.call.out[n], 0.0f);
      } else if (window != 0 && mask == Mask::causal) {  // row 0 sees keys 150..299 only: mean of those values
        std::int64_t lo, hi;
        visible_interval(p.call, q_pos0, lo, hi);
        ASSERT_EQ(lo, 150);
        ASSERT_EQ(hi, 300);
      }
    }
}

// A window wider than any sequence is valid and means "unlimited": same bits as window 0. (Any arithmetic
// on the window, e.g. 2 * window, must not overflow: the UBSan build of this test would report it.)
TEST_P(Indexing, HugeWindowsMeanUnlimited) {
  ALIBI_SKIP_UNLESS_CPU();
  for (Mask mask : {Mask::causal, Mask::bidirectional}) {
    ShapeSpec s;
    s.q_len = 20, s.kv_len = 30, s.num_heads = 4, s.num_kv_heads = 2, s.head_dim = 8, s.mask = mask;
    Problem unlimited = make_problem(s, 6);
    ASSERT_NO_THROW(GetParam().attention(unlimited.call));
    for (std::int64_t window :
         {std::numeric_limits<std::int64_t>::max(), std::numeric_limits<std::int64_t>::max() / 2 + 1, kTwoTo(40)}) {
      Problem p = make_problem(s, 6);
      p.call.options.window = window;
      ASSERT_NO_THROW(GetParam().attention(p.call)) << "window " << window;
      EXPECT_TRUE(bitwise_equal(p.call.out, unlimited.call.out, p.q_count())) << "window " << window;
    }
  }
}

// ---- sizes that overflow

struct Overflow {
  const char* what;
  int batch;
  std::int64_t q_len, kv_len;
  int num_heads, num_kv_heads, head_dim;
  std::int64_t q_pos0;
};

// Each must throw std::invalid_argument before touching the (tiny) tensors it is given. The element
// counts: 2^64 (wraps to exactly 0 in 64-bit unsigned arithmetic), 2^61 (fits in int64 but its byte
// count, 2^63, overflows std::ptrdiff_t), 2^124, and so on.
const Overflow kOverflows[] = {
    {"q: 2^62 * 4 = 2^64 elements", 1, kTwoTo(62), 1, 1, 1, 4, -1},
    {"q: 2^32 * 2^16 * 2^16 = 2^64 elements", 1, kTwoTo(32), 1, 1 << 16, 1, 1 << 16, -1},
    {"q: 2^61 elements = 2^63 bytes", 1, kTwoTo(61), 1, 1, 1, 1, -1},
    {"q: 2^30 * 2^20 * 2^20 * 2 elements", 1 << 30, kTwoTo(20), 1, 1 << 20, 1, 2, -1},
    {"q: INT_MAX^2 * INT64_MAX", std::numeric_limits<int>::max(), std::numeric_limits<std::int64_t>::max(), 1,
     std::numeric_limits<int>::max(), std::numeric_limits<int>::max(), std::numeric_limits<int>::max(), -1},
    {"k/v: 2^40 * 2^12 * 2^12 = 2^64 elements", 1, 1, kTwoTo(40), 1 << 12, 1 << 12, 1 << 12, -1},
    {"k/v: 2^61 elements = 2^63 bytes", 1, 1, kTwoTo(61), 1, 1, 1, -1},
    {"k/v: 2^61 elements with no query row", 1, 0, kTwoTo(61), 1, 1, 1, -1},
    {"q_pos0 + q_len: INT64_MAX - 2 + 3", 1, 3, 4, 1, 1, 1, std::numeric_limits<std::int64_t>::max() - 2},
};

TEST_P(Indexing, OverflowingSizesAreRejectedBeforeAnyAccess) {
  ALIBI_SKIP_UNLESS_CPU();
  // Real but tiny tensors: a kernel that got past validation would read and write far beyond them.
  std::vector<float> q(64, 1.0f), k(64, 1.0f), v(64, 1.0f), out(64, -7.0f);
  for (const Overflow& o : kOverflows) {
    SCOPED_TRACE(o.what);
    Call c;
    c.q = q.data();
    c.k = k.data();
    c.v = v.data();
    c.out = out.data();
    c.shape.batch = o.batch;
    c.shape.q_len = o.q_len;
    c.shape.kv_len = o.kv_len;
    c.shape.num_heads = o.num_heads;
    c.shape.num_kv_heads = o.num_kv_heads;
    c.shape.head_dim = o.head_dim;
    c.options.q_pos0 = o.q_pos0;
    ASSERT_EQ(expected_verdict(c), Verdict::reject);  // the table itself is right
    try {
      GetParam().attention(c);
      ADD_FAILURE() << "accepted";
    } catch (const std::invalid_argument& e) {
      const std::string message = e.what();
      EXPECT_TRUE(message.find("overflow") != std::string::npos) << message;
    }
    for (float x : out) ASSERT_EQ(x, -7.0f) << "out was written";
    // The same shapes with null tensors: still a clean rejection.
    c.q = c.k = c.v = nullptr;
    c.out = nullptr;
    EXPECT_THROW(GetParam().attention(c), std::invalid_argument);
  }
}

// Zero-sized work is valid even when the other sizes are enormous: nothing may be read or written.
TEST_P(Indexing, ZeroSizedWorkWithHugeOtherSizes) {
  ALIBI_SKIP_UNLESS_CPU();
  Call c;
  c.shape.batch = 0;
  c.shape.q_len = kTwoTo(62);
  c.shape.kv_len = kTwoTo(62);
  c.shape.num_heads = c.shape.num_kv_heads = 1 << 20;
  c.shape.head_dim = 1 << 20;
  ASSERT_EQ(expected_verdict(c), Verdict::accept);
  EXPECT_NO_THROW(GetParam().attention(c));  // all pointers null
  c.shape.batch = 1;
  c.shape.q_len = 0;
  c.shape.kv_len = kTwoTo(20);
  c.shape.num_heads = c.shape.num_kv_heads = c.shape.head_dim = 1;
  float dummy = 3.0f;
  c.k = c.v = &dummy;  // 2^20 keys claimed, one float real: q_len 0 means nothing is read
  EXPECT_NO_THROW(GetParam().attention(c));
}

TEST(IndexingHelpers, KeyNormsAndCausalBiasRejectOverflow) {
  Call c;
  c.shape.batch = 1;
  c.shape.kv_len = kTwoTo(40);
  c.shape.num_kv_heads = 1 << 12;
  c.shape.head_dim = 1 << 12;  // 2^64 key floats
  float dummy[4] = {};
  c.k = dummy;
  EXPECT_THROW(key_norms(c, dummy), std::invalid_argument);
  c.shape.kv_len = kTwoTo(61);
  c.shape.num_kv_heads = c.shape.head_dim = 1;  // 2^61 key floats = 2^63 bytes
  EXPECT_THROW(key_norms(c, dummy), std::invalid_argument);
  EXPECT_THROW(alibi::causal_bias(0.5f, kTwoTo(32), kTwoTo(32), dummy), std::invalid_argument);
  EXPECT_THROW(alibi::causal_bias(0.5f, kTwoTo(31), kTwoTo(30), dummy), std::invalid_argument);  // 2^61
  for (float x : dummy) EXPECT_EQ(x, 0.0f);
}

}  // namespace
}  // namespace alibi_reliability
