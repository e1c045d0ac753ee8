// What every packaging test builds: a program that uses alibi the way a downstream project would. It runs
// one small grouped-query causal attention, compares it with a float64 evaluation of the documented
// formula written out below, prints the kernel ISA it was compiled for, does the same through runtime
// dispatch (alibi/dispatch.hpp, from this TU built without ISA flags), and fails on any mismatch.
#include <alibi/alibi.hpp>
#include <alibi/dispatch.hpp>
#include <alibi/version.hpp>

#include <cmath>
#include <cstdio>
#include <vector>

namespace {

constexpr int kQLen = 3;
constexpr int kKvLen = 5;
constexpr int kNumHeads = 2;
constexpr int kNumKvHeads = 1;
constexpr int kHeadDim = 4;
constexpr float kScale = 0.5f;
constexpr float kSlopes[kNumHeads] = {0.5f, 0.25f};

// out[i][h] = sum_j softmax_j(scale * q.k_j - m_h * (p - j)) v_j over keys j <= p, p = kv_len - q_len + i.
std::vector<double> naive_attention(const std::vector<float>& q, const std::vector<float>& k,
                                    const std::vector<float>& v) {
  std::vector<double> out(q.size(), 0.0);
  const int group = kNumHeads / kNumKvHeads;
  for (int i = 0; i < kQLen; ++i) {
    const int position = kKvLen - kQLen + i;
    for (int h = 0; h < kNumHeads; ++h) {
      const float* q_row = &q[(i * kNumHeads + h) * kHeadDim];
      std::vector<double> logits(position + 1);
      double max_logit = -INFINITY;
      for (int j = 0; j <= position; ++j) {
        const float* k_row = &k[(j * kNumKvHeads + h / group) * kHeadDim];
        double dot = 0.0;
        for (int d = 0; d < kHeadDim; ++d) dot += double(q_row[d]) * k_row[d];
        logits[j] = kScale * dot - double(kSlopes[h]) * (position - j);
        max_logit = std::fmax(max_logit, logits[j]);
      }
      double sum = 0.0;
      for (double& logit : logits) sum += (logit = std::exp(logit - max_logit));
      for (int j = 0; j <= position; ++j) {
        const float* v_row = &v[(j * kNumKvHeads + h / group) * kHeadDim];
        for (int d = 0; d < kHeadDim; ++d) out[(i * kNumHeads + h) * kHeadDim + d] += logits[j] / sum * v_row[d];
      }
    }
  }
  return out;
}

std::vector<float> wave(std::size_t count, float frequency) {
  std::vector<float> values(count);
  for (std::size_t n = 0; n < count; ++n) values[n] = std::sin(frequency * float(n + 1));
  return values;
}

}  // namespace

int main() {
  const std::vector<float> q = wave(std::size_t(kQLen) * kNumHeads * kHeadDim, 0.37f);
  const std::vector<float> k = wave(std::size_t(kKvLen) * kNumKvHeads * kHeadDim, 0.91f);
  const std::vector<float> v = wave(std::size_t(kKvLen) * kNumKvHeads * kHeadDim, 1.73f);
  std::vector<float> out(q.size(), NAN);

  alibi::AttentionShape shape;
  shape.q_len = kQLen;
  shape.kv_len = kKvLen;
  shape.num_heads = kNumHeads;
  shape.num_kv_heads = kNumKvHeads;
  shape.head_dim = kHeadDim;
  alibi::AttentionOptions options;
  options.scale = kScale;
  options.slopes = kSlopes;
  alibi::attention(q.data(), k.data(), v.data(), out.data(), shape, options);

  std::vector<float> dispatched(q.size(), NAN);
  alibi::dispatch::attention(q.data(), k.data(), v.data(), dispatched.data(), shape, options);

  const std::vector<double> expected = naive_attention(q, k, v);
  double worst_error = 0.0;
  for (std::size_t n = 0; n < out.size(); ++n) {
    for (const float value : {out[n], dispatched[n]}) {
      const double error = std::fabs(double(value) - expected[n]);
      worst_error = std::isnan(error) ? INFINITY : std::fmax(worst_error, error);
    }
  }

  std::printf("alibi version: %s\n", ALIBI_VERSION_STRING);
  std::printf("alibi isa: %s\n", alibi::isa::native::name);
  std::printf("alibi dispatch isa: %s\n", alibi::dispatch::isa_name());
  std::printf("max abs error vs float64: %.3g\n", worst_error);
  if (!(worst_error <= 1e-5)) {
    std::printf("attention FAILED\n");
    return 1;
  }
  std::printf("attention ok\n");
  return 0;
}
