// Training the ALiBi slopes with alibi::attention_backward: data made by attention with known slopes,
// then plain gradient descent on the slopes, starting from the paper's defaults, recovers them.
//
// Loss: L(m) = 1/2 mean over elements of (attention(q, k, v; m) - target)^2, with target the attention of
// the same q, k, v under the hidden slopes. dL/dout = (out - target) / count goes into attention_backward,
// which returns dL/dm in grads.dslopes (nothing else is asked for). Exits 1 if the slopes are not
// recovered to 1e-3.
//
// Usage: alibi_learn_slopes [steps]   (default 250)
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "alibi/alibi.hpp"

int main(int argc, char** argv) {
  const int steps = argc > 1 ? std::atoi(argv[1]) : 250;
  alibi::AttentionShape shape;
  shape.batch = 4;
  shape.q_len = 128;
  shape.kv_len = 128;
  shape.num_heads = 4;
  shape.num_kv_heads = 2;
  shape.head_dim = 16;
  const std::size_t q_size = static_cast<std::size_t>(shape.batch * shape.q_len * shape.num_heads * shape.head_dim);
  const std::size_t kv_size =
      static_cast<std::size_t>(shape.batch * shape.kv_len * shape.num_kv_heads * shape.head_dim);

  std::mt19937 rng(2022);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> q(q_size), k(kv_size), v(kv_size);
  for (float& x : q) x = normal(rng);
  for (float& x : k) x = normal(rng);
  for (float& x : v) x = normal(rng);

  // The data: attention under hidden slopes.
  const std::vector<float> hidden = {0.6f, 0.2f, 0.05f, 0.01f};
  std::vector<float> target(q_size);
  alibi::AttentionOptions options;
  options.slopes = hidden.data();
  alibi::attention(q.data(), k.data(), v.data(), target.data(), shape, options);

  // Gradient descent from the default slopes (1/4, 1/16, 1/64, 1/256 for 4 heads).
  std::vector<float> slopes = alibi::slopes(shape.num_heads);
  std::vector<float> out(q_size), lse(q_size / static_cast<std::size_t>(shape.head_dim)), dout(q_size),
      dslopes(slopes.size());
  options.slopes = slopes.data();
  options.lse = lse.data();
  alibi::AttentionGrads grads;
  grads.dslopes = dslopes.data();
  // The flattest head sees every key, so its loss curves ~distance^2 times more steeply than the steepest
  // head's: the step must suit the former (larger steps oscillate on it), and the latter converges slowest.
  const float learning_rate = 0.5f;
  double worst = 0.0;
  for (int step = 0; step <= steps; ++step) {
    alibi::attention(q.data(), k.data(), v.data(), out.data(), shape, options);
    double loss = 0.0;
    for (std::size_t n = 0; n < q_size; ++n) {
      const float diff = out[n] - target[n];
      loss += 0.5 * static_cast<double>(diff) * diff / static_cast<double>(q_size);
      dout[n] = diff / static_cast<float>(q_size);
    }
    alibi::attention_backward(q.data(), k.data(), v.data(), out.data(), lse.data(), dout.data(), grads, shape, options);
    worst = 0.0;
    for (std::size_t h = 0; h < slopes.size(); ++h) worst = std::fmax(worst, std::fabs(slopes[h] - hidden[h]));
    if (step % 25 == 0 || step == steps) {
      std::printf("step %4d  loss %.3e  slopes", step, loss);
      for (const float m : slopes) std::printf(" %.5f", m);
      std::printf("  (max error %.2e)\n", worst);
    }
    for (std::size_t h = 0; h < slopes.size(); ++h) slopes[h] -= learning_rate * dslopes[h];
  }
  std::printf("hidden slopes         ");
  for (const float m : hidden) std::printf(" %.5f", m);
  std::printf("\n%s\n", worst < 1e-3 ? "recovered" : "NOT recovered");
  return worst < 1e-3 ? 0 : 1;
}
