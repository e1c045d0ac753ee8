// The backward pass (issue 14): alibi::attention_backward, typed over every ISA this binary was compiled for.
//
// Expected values come from a float64 forward + backward written here from the formulas (positions,
// bias, mask and window as the forward's contract states them; independent of the library), itself
// checked against float64 central finite differences of L = sum(dout * out) on tiny shapes (q, k, v and
// the slopes). The accuracy rule is the (FlashAttention-2's): for each gradient,
//   max |library - float64| <= 3 max |naive fp32 - float64| + 1e-6 max |float64|
// (dslopes: + 2^-24 max_h sum_ij |dS_ij distance_ij|, one rounding of the sum's condition, see below),
// the naive fp32 implementation being the same formulas, unfused (whole rows of S and P), in float; the
// library's backward gets the library's own forward out and lse.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "alibi/alibi.hpp"
#include "test_registry.hpp"
#include "test_support.hpp"

namespace alibi_test {
namespace {

constexpr int kCounterBefore = __COUNTER__;

// One backward case: sizes, options (slopes held here; absolute positions) and its data.
struct BackwardCase {
  alibi::AttentionShape shape;
  alibi::Mask mask = alibi::Mask::causal;
  std::int64_t window = 0;
  std::int64_t q_pos0 = -1;  // as AttentionOptions::q_pos0
  std::int64_t kv_pos0 = 0;
  float scale = 0.0f;
  std::vector<float> slopes;  // empty: the default slopes
  std::vector<float> q, k, v, dout;

  alibi::AttentionOptions options() const {
    alibi::AttentionOptions o;
    o.mask = mask;
    o.window = window;
    o.q_pos0 = q_pos0;
    o.kv_pos0 = kv_pos0;
    o.scale = scale;
    o.slopes = slopes.empty() ? nullptr : slopes.data();
    return o;
  }
  std::string describe() const {
    std::ostringstream text;
    text << alibi_test::describe(shape, options()) << " kv_pos0=" << kv_pos0;
    return text.str();
  }
  std::int64_t abs_q_pos0() const { return q_pos0 == -1 ? kv_pos0 + shape.kv_len - shape.q_len : q_pos0; }
  float resolved_scale() const { return scale != 0.0f ? scale : 1.0f / std::sqrt(static_cast<float>(shape.head_dim)); }
  std::vector<float> resolved_slopes() const { return slopes.empty() ? alibi::slopes(shape.num_heads) : slopes; }
};

BackwardCase make_case(alibi::AttentionShape shape, std::mt19937& rng, float sigma = 1.0f) {
  BackwardCase c;
  c.shape = shape;
  c.q = normal_floats(static_cast<std::size_t>(q_count(shape)), rng, sigma);
  c.k = normal_floats(static_cast<std::size_t>(kv_count(shape)), rng, sigma);
  c.v = normal_floats(static_cast<std::size_t>(kv_count(shape)), rng);
  c.dout = normal_floats(static_cast<std::size_t>(q_count(shape)), rng);
  return c;
}

alibi::AttentionShape shape_of(int batch, std::int64_t q_len, std::int64_t kv_len, int heads, int kv_heads, int dim) {
  alibi::AttentionShape s;
  s.batch = batch;
  s.q_len = q_len;
  s.kv_len = kv_len;
  s.num_heads = heads;
  s.num_kv_heads = kv_heads;
  s.head_dim = dim;
  return s;
}

// ---- the reference: forward and backward in R (double: the reference; float: the naive fp32 version)

template <class R>
struct Gradients {
  std::vector<R> out, dq, dk, dv, dslopes;
  std::vector<R> dslopes_terms;  // per head: sum of |dS_ij * distance_ij|, the condition of dslopes' sum
};

template <class R>
std::vector<R> as(const std::vector<float>& x) {
  return std::vector<R>(x.begin(), x.end());
}

template <class R>
Gradients<R> reference_gradients(const BackwardCase& c, const std::vector<R>& q, const std::vector<R>& k,
                                 const std::vector<R>& v, const std::vector<R>& slopes, const std::vector<R>& dout) {
  const alibi::AttentionShape& s = c.shape;
  const std::int64_t dim = s.head_dim, group = s.num_heads / s.num_kv_heads;
  const R scale = static_cast<R>(c.resolved_scale());
  Gradients<R> g;
  g.out.assign(q.size(), R(0));
  g.dq.assign(q.size(), R(0));
  g.dk.assign(k.size(), R(0));
  g.dv.assign(v.size(), R(0));
  g.dslopes.assign(static_cast<std::size_t>(s.num_heads), R(0));
  g.dslopes_terms.assign(static_cast<std::size_t>(s.num_heads), R(0));
  std::vector<R> logit(static_cast<std::size_t>(s.kv_len)), p(logit.size()), dist(logit.size());
  std::vector<char> seen(logit.size());
  for (std::int64_t b = 0; b < s.batch; ++b)
    for (std::int64_t i = 0; i < s.q_len; ++i)
      for (std::int64_t h = 0; h < s.num_heads; ++h) {
        const std::int64_t kvh = h / group, pos = c.abs_q_pos0() + i;
        const std::size_t qa = static_cast<std::size_t>(((b * s.q_len + i) * s.num_heads + h) * dim);
        auto ka = [&](std::int64_t j) {
          return static_cast<std::size_t>(((b * s.kv_len + j) * s.num_kv_heads + kvh) * dim);
        };
        R max = -std::numeric_limits<R>::infinity();
        for (std::int64_t j = 0; j < s.kv_len; ++j) {
          const std::int64_t t = c.kv_pos0 + j, delta = pos - t, adelta = delta < 0 ? -delta : delta;
          bool visible = c.mask == alibi::Mask::causal ? (t <= pos && (c.window == 0 || delta < c.window))
                                                       : (c.window == 0 || adelta < c.window);
          seen[static_cast<std::size_t>(j)] = visible;
          if (!visible) continue;
          R dot = 0;
          for (std::int64_t d = 0; d < dim; ++d)
            dot += q[qa + static_cast<std::size_t>(d)] * k[ka(j) + static_cast<std::size_t>(d)];
          dist[static_cast<std::size_t>(j)] = static_cast<R>(adelta);
          logit[static_cast<std::size_t>(j)] =
              scale * dot - slopes[static_cast<std::size_t>(h)] * static_cast<R>(adelta);
          max = std::max(max, logit[static_cast<std::size_t>(j)]);
        }
        if (!(max > -std::numeric_limits<R>::infinity())) continue;  // sees nothing: zeros
        R sum = 0;
        for (std::int64_t j = 0; j < s.kv_len; ++j)
          if (seen[static_cast<std::size_t>(j)])
            sum += p[static_cast<std::size_t>(j)] = std::exp(logit[static_cast<std::size_t>(j)] - max);
        for (std::int64_t j = 0; j < s.kv_len; ++j) {
          if (!seen[static_cast<std::size_t>(j)]) continue;
          p[static_cast<std::size_t>(j)] /= sum;
          for (std::int64_t d = 0; d < dim; ++d)
            g.out[qa + static_cast<std::size_t>(d)] +=
                p[static_cast<std::size_t>(j)] * v[ka(j) + static_cast<std::size_t>(d)];
        }
        R big_d = 0;
        for (std::int64_t d = 0; d < dim; ++d)
          big_d += dout[qa + static_cast<std::size_t>(d)] * g.out[qa + static_cast<std::size_t>(d)];
        for (std::int64_t j = 0; j < s.kv_len; ++j) {
          if (!seen[static_cast<std::size_t>(j)]) continue;
          const R pj = p[static_cast<std::size_t>(j)];
          R dp = 0;
          for (std::int64_t d = 0; d < dim; ++d)
            dp += dout[qa + static_cast<std::size_t>(d)] * v[ka(j) + static_cast<std::size_t>(d)];
          const R ds = pj * (dp - big_d);
          for (std::int64_t d = 0; d < dim; ++d) {
            const std::size_t qd = qa + static_cast<std::size_t>(d), kd = ka(j) + static_cast<std::size_t>(d);
            g.dv[kd] += pj * dout[qd];
            g.dq[qd] += scale * ds * k[kd];
            g.dk[kd] += scale * ds * q[qd];
          }
          g.dslopes[static_cast<std::size_t>(h)] += ds * -dist[static_cast<std::size_t>(j)];
          g.dslopes_terms[static_cast<std::size_t>(h)] += std::fabs(ds * dist[static_cast<std::size_t>(j)]);
        }
      }
  return g;
}

template <class R>
Gradients<R> reference_gradients(const BackwardCase& c) {
  const std::vector<float> slopes = c.resolved_slopes();
  return reference_gradients<R>(c, as<R>(c.q), as<R>(c.k), as<R>(c.v), as<R>(slopes), as<R>(c.dout));
}

// ---- the library

struct LibraryGradients {
  std::vector<float> out, lse, dq, dk, dv, dslopes;
};

template <class Isa>
LibraryGradients library_gradients(const BackwardCase& c, int threads = 0) {
  LibraryGradients g;
  const std::size_t qn = static_cast<std::size_t>(q_count(c.shape)), kvn = static_cast<std::size_t>(kv_count(c.shape));
  g.out.assign(qn, unwritten_marker());
  g.lse.assign(static_cast<std::size_t>(c.shape.batch * c.shape.q_len * c.shape.num_heads), unwritten_marker());
  g.dq.assign(qn, unwritten_marker());
  g.dk.assign(kvn, unwritten_marker());
  g.dv.assign(kvn, unwritten_marker());
  g.dslopes.assign(static_cast<std::size_t>(c.shape.num_heads), unwritten_marker());
  alibi::AttentionOptions o = c.options();
  o.lse = g.lse.data();
  o.num_threads = threads;
  alibi::attention<Isa>(c.q.data(), c.k.data(), c.v.data(), g.out.data(), c.shape, o);
  const alibi::AttentionGrads grads{g.dq.data(), g.dk.data(), g.dv.data(), g.dslopes.data()};
  alibi::attention_backward<Isa>(c.q.data(), c.k.data(), c.v.data(), g.out.data(), g.lse.data(), c.dout.data(), grads,
                                 c.shape, o);
  return g;
}

double max_abs(const std::vector<double>& x) {
  double m = 0;
  for (double e : x) m = std::max(m, std::fabs(e));
  return m;
}

template <class T>
double max_error(const std::vector<T>& got, const std::vector<double>& ref) {
  double m = 0;
  for (std::size_t n = 0; n < ref.size(); ++n) {
    const double e = std::fabs(static_cast<double>(got[n]) - ref[n]);
    if (!(e <= m)) m = std::isnan(e) ? HUGE_VAL : e;
  }
  return m;
}

// The accuracy rule for one gradient.
void expect_gradient_within_rule(const char* name, const std::vector<float>& got, const std::vector<float>& naive,
                                 const std::vector<double>& ref, const std::string& what, double extra_floor = 0.0) {
  const double library_error = max_error(got, ref), naive_error = max_error(naive, ref);
  const double allowed = 3.0 * naive_error + 1e-6 * max_abs(ref) + extra_floor;
  EXPECT_LE(library_error, allowed) << what << ": " << name << " error " << library_error << ", naive fp32 error "
                                    << naive_error << ", max |ref| " << max_abs(ref);
}

// The four gradients, for the checks that treat them alike: name and member of each result type.
constexpr const char* kGradientNames[4] = {"dq", "dk", "dv", "dslopes"};
template <class G>
constexpr std::array<decltype(&G::dq), 4> gradient_members() {
  return {&G::dq, &G::dk, &G::dv, &G::dslopes};
}

template <class Isa>
void expect_case_within_rule(const BackwardCase& c) {
  const Gradients<double> ref = reference_gradients<double>(c);
  const Gradients<float> naive = reference_gradients<float>(c);
  const LibraryGradients lib = library_gradients<Isa>(c);
  const auto lib_of = gradient_members<LibraryGradients>();
  const auto naive_of = gradient_members<Gradients<float>>();
  const auto ref_of = gradient_members<Gradients<double>>();
  for (std::size_t n = 0; n < 4; ++n) {
    // dslopes: a handful of sums, each of terms that cancel (a covariance per row), so the naive version's
    // largest error over them is sometimes far below its typical error (a head whose two last rows
    // contribute 71 and -58 to a total of 11). The floor is the error of rounding each term dS_ij distance_ij
    // once (unit roundoff 2^-24 times the sum of their magnitudes): the least any fp32 evaluation can promise,
    // and well above what the library needs (over 1092 random cases, 3 ISAs: 2 exceed the plain rule, by at
    // most 0.07 of this floor).
    const double extra_floor = n == 3 ? 0x1p-24 * max_abs(ref.dslopes_terms) : 0.0;
    expect_gradient_within_rule(kGradientNames[n], lib.*lib_of[n], naive.*naive_of[n], ref.*ref_of[n], c.describe(),
                                extra_floor);
  }
}

// ---- tests

ALIBI_ISA_TEST(ReferenceMatchesFiniteDifferences) {
  // The float64 reference against central differences of L = sum(dout * out), for every input element and
  // every slope, on tiny shapes covering both masks, a window, GQA, far shards and slopes 0 and negative.
  std::mt19937 rng(14);
  struct Setup {
    alibi::AttentionShape shape;
    alibi::Mask mask;
    std::int64_t window, q_pos0, kv_pos0;
    std::vector<float> slopes;
  };
  const Setup setups[] = {
      {shape_of(1, 3, 4, 2, 1, 3), alibi::Mask::causal, 0, -1, 0, {0.5f, -0.25f}},
      {shape_of(1, 3, 5, 2, 2, 2), alibi::Mask::bidirectional, 3, 1, 0, {0.0f, 0.75f}},
      {shape_of(2, 2, 3, 3, 1, 2), alibi::Mask::causal, 2, 40, 30, {0.1f, 0.3f, -0.2f}},
      {shape_of(1, 2, 3, 2, 1, 1), alibi::Mask::bidirectional, 0, 0, 20, {0.2f, 0.05f}},
  };
  for (const Setup& setup : setups) {
    BackwardCase c = make_case(setup.shape, rng);
    c.mask = setup.mask;
    c.window = setup.window;
    c.q_pos0 = setup.q_pos0;
    c.kv_pos0 = setup.kv_pos0;
    c.slopes = setup.slopes;
    std::vector<double> q = as<double>(c.q), k = as<double>(c.k), v = as<double>(c.v), m = as<double>(c.slopes),
                        dout = as<double>(c.dout);
    const Gradients<double> g = reference_gradients<double>(c, q, k, v, m, dout);
    const auto loss = [&] {
      const Gradients<double> x = reference_gradients<double>(c, q, k, v, m, dout);
      double l = 0;
      for (std::size_t n = 0; n < x.out.size(); ++n) l += dout[n] * x.out[n];
      return l;
    };
    const double eps = 1e-5;
    const auto check = [&](std::vector<double>& x, const std::vector<double>& analytic, const char* name) {
      for (std::size_t n = 0; n < x.size(); ++n) {
        const double saved = x[n];
        x[n] = saved + eps;
        const double up = loss();
        x[n] = saved - eps;
        const double down = loss();
        x[n] = saved;
        const double numeric = (up - down) / (2 * eps);
        EXPECT_NEAR(analytic[n], numeric, 1e-7 * (1 + std::fabs(numeric)))
            << c.describe() << ": d" << name << "[" << n << "]";
      }
    };
    check(q, g.dq, "q");
    check(k, g.dk, "k");
    check(v, g.dv, "v");
    check(m, g.dslopes, "slopes");
  }
}

ALIBI_ISA_TEST(GradientsMatchTheReferenceOnAwkwardShapes) {
  std::mt19937 rng(1414);
  struct Setup {
    alibi::AttentionShape shape;
    alibi::Mask mask;
    std::int64_t window, q_pos0, kv_pos0;
    std::vector<float> slopes;
  };
  const alibi::Mask causal = alibi::Mask::causal, bidir = alibi::Mask::bidirectional;
  std::vector<Setup> setups = {
      {shape_of(1, 1, 1, 1, 1, 1), causal, 0, -1, 0, {}},
      {shape_of(1, 63, 63, 3, 3, 17), causal, 0, -1, 0, {}},
      {shape_of(1, 65, 65, 5, 1, 80), bidir, 0, -1, 0, {}},
      {shape_of(2, 17, 65, 12, 4, 17), causal, 9, -1, 0, {}},
      {shape_of(1, 257, 257, 2, 1, 16), causal, 0, -1, 0, {0.0f, -0.05f}},
      {shape_of(1, 63, 257, 4, 2, 8), bidir, 31, 100, 0, {0.5f, 0.0f, -0.1f, 0.02f}},
      {shape_of(1, 1, 257, 12, 3, 80), causal, 0, -1, 0, {}},
      {shape_of(1, 65, 63, 3, 1, 1), causal, 0, 0, 0, {}},                  // more queries than keys
      {shape_of(1, 40, 63, 6, 2, 17), causal, 0, 300, 250, {}},             // a shard of keys before the queries
      {shape_of(1, 40, 63, 6, 3, 16), bidir, 0, 5000, 10000, {}},           // keys far after the queries
      {shape_of(1, 33, 65, 2, 2, 5), causal, 16, 1000, 0, {0.25f, -0.5f}},  // window, no key visible for some
  };
  if (alibi_test_quick_mode()) setups.resize(7);
  const std::size_t large_logits = setups.size();  // scale 10: logits in the hundreds, exp needs the lse shift
  setups.push_back({shape_of(1, 50, 70, 4, 2, 16), causal, 0, -1, 0, {}});
  for (const Setup& setup : setups) {
    BackwardCase c = make_case(setup.shape, rng);
    c.mask = setup.mask;
    c.window = setup.window;
    c.q_pos0 = setup.q_pos0;
    c.kv_pos0 = setup.kv_pos0;
    c.slopes = setup.slopes;
    if (&setup - setups.data() == static_cast<std::ptrdiff_t>(large_logits)) c.scale = 10.0f;
    expect_case_within_rule<Isa>(c);
  }
}

ALIBI_ISA_TEST(RandomShapesMatchTheReference) {
  std::mt19937 rng(2024);
  const int cases = scaled(40, 6);
  const int dims[] = {1, 2, 7, 16, 17, 32, 64, 80};
  const int groups[][2] = {{1, 1}, {3, 3}, {4, 1}, {6, 2}, {5, 5}, {8, 2}};
  for (int n = 0; n < cases; ++n) {
    const auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
    const auto& hg = groups[pick(0, 5)];
    const std::int64_t kv_len = pick(1, 130), q_len = pick(1, 130);
    BackwardCase c =
        make_case(shape_of(pick(1, 2), q_len, kv_len, hg[0], hg[1], dims[pick(0, 7)]), rng, pick(0, 1) ? 1.0f : 2.0f);
    c.mask = pick(0, 1) ? alibi::Mask::causal : alibi::Mask::bidirectional;
    c.window = pick(0, 2) == 0 ? pick(1, 40) : 0;
    if (pick(0, 2) == 0) {
      c.kv_pos0 = pick(0, 500);
      c.q_pos0 = c.kv_pos0 + pick(-50, 200);
      if (c.q_pos0 < 0) c.q_pos0 = 0;
    }
    if (pick(0, 1)) {
      c.slopes.resize(static_cast<std::size_t>(hg[0]));
      for (float& m : c.slopes) m = std::uniform_real_distribution<float>(-0.2f, 1.0f)(rng);
      c.slopes[0] = 0.0f;
    }
    if (pick(0, 3) == 0) c.scale = 0.3f;
    expect_case_within_rule<Isa>(c);
  }
}

ALIBI_ISA_TEST(RowsLongerThanAChunkMatchTheReference) {
  // Rows that see more keys than a row block keeps P and dP for (kernels::kBackwardChunkKeys = 4096):
  // the statistics sweep and the gradient sweep go over the keys chunk by chunk, recomputing S and dP.
  std::mt19937 rng(4096);
  BackwardCase wide = make_case(shape_of(1, 7, 5000, 2, 1, 8), rng);
  wide.mask = alibi::Mask::bidirectional;
  wide.slopes = {0.001f, -0.0005f};
  BackwardCase late = make_case(shape_of(1, 5, 4500, 3, 3, 5), rng);  // causal, the last 5 positions
  for (const BackwardCase* c : {&wide, &late}) expect_case_within_rule<Isa>(*c);
}

ALIBI_ISA_TEST(ThreadCountDoesNotChangeGradients) {
  std::mt19937 rng(7);
  BackwardCase c = make_case(shape_of(2, 130, 200, 6, 2, 17), rng);
  BackwardCase d = make_case(shape_of(1, 70, 150, 4, 4, 80), rng);
  d.mask = alibi::Mask::bidirectional;
  d.window = 50;
  d.slopes = {0.3f, 0.0f, -0.1f, 0.05f};
  for (const BackwardCase* x : {&c, &d}) {
    const LibraryGradients one = library_gradients<Isa>(*x, 1);
    for (int threads : {2, 3}) {
      const LibraryGradients more = library_gradients<Isa>(*x, threads);
      const auto member = gradient_members<LibraryGradients>();
      for (std::size_t n = 0; n < 4; ++n)
        EXPECT_TRUE(same_bits(one.*member[n], more.*member[n]))
            << x->describe() << " " << kGradientNames[n] << ", threads " << threads;
    }
  }
}

ALIBI_ISA_TEST(NullMembersAreNotComputedAndOthersOverwritten) {
  std::mt19937 rng(8);
  const BackwardCase c = make_case(shape_of(1, 20, 30, 4, 2, 9), rng);
  const LibraryGradients all = library_gradients<Isa>(c, 1);
  alibi::AttentionOptions o = c.options();
  o.lse = nullptr;
  o.num_threads = 1;
  // Each gradient alone, into buffers holding garbage: equal to the full call's (overwritten, not added).
  const auto member = gradient_members<LibraryGradients>();
  const auto grad_member = gradient_members<alibi::AttentionGrads>();
  for (std::size_t which = 0; which < 4; ++which) {
    LibraryGradients got;
    alibi::AttentionGrads g;
    for (std::size_t n = 0; n < 4; ++n) got.*member[n] = std::vector<float>((all.*member[n]).size(), 5.0f);
    g.*grad_member[which] = (got.*member[which]).data();
    alibi::attention_backward<Isa>(c.q.data(), c.k.data(), c.v.data(), all.out.data(), all.lse.data(), c.dout.data(), g,
                                   c.shape, o);
    for (std::size_t n = 0; n < 4; ++n)
      EXPECT_EQ(got.*member[n], n == which ? all.*member[n] : std::vector<float>((all.*member[n]).size(), 5.0f))
          << "only " << kGradientNames[which] << " asked for: " << kGradientNames[n];
  }
}

ALIBI_ISA_TEST(EmptyShapesGiveZeroGradients) {
  std::mt19937 rng(9);
  for (const auto& shape : {shape_of(1, 5, 0, 2, 1, 3), shape_of(1, 0, 5, 2, 1, 3), shape_of(0, 5, 5, 2, 1, 3)}) {
    BackwardCase c = make_case(shape, rng);
    const LibraryGradients g = library_gradients<Isa>(c, 1);
    for (const auto* x : {&g.dq, &g.dk, &g.dv, &g.dslopes})
      for (float e : *x) EXPECT_EQ(e, 0.0f) << c.describe();
  }
}

ALIBI_ISA_TEST(RejectsBadInputWithoutWriting) {
  std::mt19937 rng(10);
  const BackwardCase c = make_case(shape_of(1, 8, 8, 2, 1, 4), rng);
  const LibraryGradients good = library_gradients<Isa>(c, 1);
  std::vector<float> q = c.q, k = c.k, v = c.v, out = good.out, lse = good.lse, dout = c.dout;
  std::vector<float> slopes = {0.5f, 0.25f};
  const float marker = unwritten_marker();
  std::vector<float> dq(q.size(), marker), dk(k.size(), marker), dv(v.size(), marker), ds(2, marker);
  const std::vector<float> dq0 = dq, dk0 = dk, dv0 = dv, ds0 = ds;
  struct Bad {
    const char* parameter;
    const float *q, *k, *v, *out, *lse, *dout;
    alibi::AttentionGrads grads;
    int num_kv_heads;
    bool custom_slopes;
  };
  const alibi::AttentionGrads all{dq.data(), dk.data(), dv.data(), ds.data()};
  auto with = [&](float* alibi::AttentionGrads::*member, float* p) {
    alibi::AttentionGrads g = all;
    g.*member = p;
    return g;
  };
  const Bad bad[] = {
      {"lse", q.data(), k.data(), v.data(), out.data(), nullptr, dout.data(), all, 1, false},
      {"dout", q.data(), k.data(), v.data(), out.data(), lse.data(), nullptr, all, 1, false},
      {"out", q.data(), k.data(), v.data(), nullptr, lse.data(), dout.data(), all, 1, false},
      {"q", nullptr, k.data(), v.data(), out.data(), lse.data(), dout.data(), all, 1, false},
      {"num_kv_heads", q.data(), k.data(), v.data(), out.data(), lse.data(), dout.data(), all, 3, false},
      {"dq", q.data(), k.data(), v.data(), out.data(), lse.data(), dout.data(),
       with(&alibi::AttentionGrads::dq, q.data()), 1, false},
      {"dq", q.data(), k.data(), v.data(), out.data(), lse.data(), dout.data(),
       with(&alibi::AttentionGrads::dq, out.data() + 3), 1, false},
      {"dk", q.data(), k.data(), v.data(), out.data(), lse.data(), dout.data(),
       with(&alibi::AttentionGrads::dk, k.data()), 1, false},
      {"dk", q.data(), k.data(), v.data(), out.data(), lse.data(), dout.data(),
       with(&alibi::AttentionGrads::dk, v.data() + 1), 1, false},
      {"dv", q.data(), k.data(), v.data(), out.data(), lse.data(), dout.data(),
       with(&alibi::AttentionGrads::dv, dout.data()), 1, false},
      {"dv", q.data(), k.data(), v.data(), out.data(), lse.data(), dout.data(),
       with(&alibi::AttentionGrads::dv, lse.data()), 1, false},
      {"dslopes", q.data(), k.data(), v.data(), out.data(), lse.data(), dout.data(),
       with(&alibi::AttentionGrads::dslopes, slopes.data()), 1, true},
      {"dslopes", q.data(), k.data(), v.data(), out.data(), lse.data(), dout.data(),
       with(&alibi::AttentionGrads::dslopes, dk.data() + 2), 1, false},
      {"dq", q.data(), k.data(), v.data(), out.data(), lse.data(), dout.data(),
       with(&alibi::AttentionGrads::dq, dv.data()), 1, false},
  };
  for (const Bad& b : bad) {
    alibi::AttentionShape shape = c.shape;
    shape.num_kv_heads = b.num_kv_heads;
    alibi::AttentionOptions o;
    o.slopes = b.custom_slopes ? slopes.data() : nullptr;
    o.num_threads = 1;
    std::string message;
    try {
      alibi::attention_backward<Isa>(b.q, b.k, b.v, b.out, b.lse, b.dout, b.grads, shape, o);
    } catch (const std::invalid_argument& e) {
      message = e.what();
    }
    // Every message, the forward's rules included, names this entry point, then the parameter.
    const std::string prefix = "alibi::attention_backward: ";
    EXPECT_TRUE(message.compare(0, prefix.size(), prefix) == 0 && message.find(b.parameter) != std::string::npos)
        << "expected an error starting '" << prefix << "' and naming " << b.parameter << ", got '" << message << "'";
    EXPECT_TRUE(same_bits(dq, dq0) && same_bits(dk, dk0) && same_bits(dv, dv0) && same_bits(ds, ds0))
        << b.parameter << ": a gradient was written";
  }
}

// ---- the table test_main.cpp registers (Note [no AVX-512 before the CPU check])

#define ALIBI_BACKWARD_TESTS(X)                    \
  X(ReferenceMatchesFiniteDifferences)             \
  X(GradientsMatchTheReferenceOnAwkwardShapes)     \
  X(RandomShapesMatchTheReference)                 \
  X(RowsLongerThanAChunkMatchTheReference)         \
  X(ThreadCountDoesNotChangeGradients)             \
  X(NullMembersAreNotComputedAndOthersOverwritten) \
  X(EmptyShapesGiveZeroGradients)                  \
  X(RejectsBadInputWithoutWriting)

ALIBI_ISA_TEST_ENTRIES("BackwardTest", ALIBI_BACKWARD_TESTS);

}  // namespace

const TestTable kBackwardTests = {kEntries.data(), kEntries.size()};

}  // namespace alibi_test
