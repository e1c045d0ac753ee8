// Pictures of ALiBi: the causal bias and the attention weights of a few heads of an 8-head model, as PNG
// heatmaps. Steep heads (large slope) only look at the last few tokens; shallow heads see far back.
//
//   alibi_bias_heatmap <output_dir> [tokens=128]
//
// Writes bias_heatmap.png (top row: bias, bottom row: attention weights; one column per head, labelled
// with its slope m), bias_heatmap_bias.png and bias_heatmap_weights.png. Query rows run down, keys
// across; light grey marks keys the causal mask hides. Colours are viridis, dark = 0 to yellow = 1:
//   bias panels:   exp(bias) = exp(-m * distance), the factor by which the bias scales a key's weight
//                  (one scale for every head, so steep and shallow heads compare directly);
//   weight panels: softmax(q.k / sqrt(d) + bias) for random q and k, each row divided by its largest
//                  weight so every row's receptive field is visible.
//
// The weights come from alibi::attention itself: with V = identity (head_dim = tokens), output row i is
// exactly the softmax row P[i, :].
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "alibi/alibi.hpp"
#include "example_support.hpp"
#include "png_writer.hpp"
#include "tiny_font.hpp"

namespace {

using Rgb = std::array<std::uint8_t, 3>;
constexpr int kModelHeads = 8;
constexpr std::array<int, 4> kShownHeads = {0, 2, 5, 7};
constexpr Rgb kMasked = {225, 225, 225};
constexpr Rgb kBackground = {255, 255, 255};

// Viridis, sampled at 9 evenly spaced stops and interpolated linearly; t is quantised to 240 levels so a
// picture has few enough colours for a palette PNG.
Rgb viridis(double t) {
  static constexpr std::array<std::array<double, 3>, 9> stops = {{{68, 1, 84},
                                                                  {71, 44, 122},
                                                                  {59, 81, 139},
                                                                  {44, 113, 142},
                                                                  {33, 144, 141},
                                                                  {39, 173, 129},
                                                                  {92, 200, 99},
                                                                  {170, 220, 50},
                                                                  {253, 231, 37}}};
  const double level = std::round(std::clamp(t, 0.0, 1.0) * 239.0) / 239.0;
  const double x = level * (stops.size() - 1);
  const auto i = std::min<std::size_t>(static_cast<std::size_t>(x), stops.size() - 2);
  const double f = x - static_cast<double>(i);
  Rgb rgb{};
  for (std::size_t c = 0; c < 3; ++c)
    rgb[c] = static_cast<std::uint8_t>(std::lround(stops[i][c] * (1.0 - f) + stops[i + 1][c] * f));
  return rgb;
}

// A tokens x tokens grid of colours, drawn as a panel of `cell`-pixel squares.
using Panel = std::vector<Rgb>;

void draw_panel(example::RgbImage& image, const Panel& panel, std::int64_t tokens, int cell, int left, int top) {
  for (std::int64_t i = 0; i < tokens; ++i)
    for (std::int64_t j = 0; j < tokens; ++j)
      for (int dy = 0; dy < cell; ++dy)
        for (int dx = 0; dx < cell; ++dx)
          image.set(left + static_cast<int>(j) * cell + dx, top + static_cast<int>(i) * cell + dy,
                    panel[static_cast<std::size_t>(i * tokens + j)]);
}

// Panels laid out in `rows` rows of kShownHeads.size() columns under a row of column labels.
bool write_grid(const std::string& path, const std::vector<const std::vector<Panel>*>& rows,
                const std::vector<std::string>& labels, std::int64_t tokens, int cell) {
  const int margin = 8, font_scale = 2, label_height = 7 * font_scale + margin, size = static_cast<int>(tokens) * cell;
  const int columns = static_cast<int>(kShownHeads.size());
  example::RgbImage image(margin + columns * (size + margin),
                          margin + label_height + static_cast<int>(rows.size()) * (size + margin), kBackground);
  for (int c = 0; c < columns; ++c) {
    const std::string& label = labels[static_cast<std::size_t>(c)];
    const int left = margin + c * (size + margin) + (size - example::text_width(label, font_scale)) / 2;
    example::draw_text(image, label, left, margin, font_scale, {40, 40, 40});
  }
  for (std::size_t r = 0; r < rows.size(); ++r)
    for (int c = 0; c < columns; ++c)
      draw_panel(image, (*rows[r])[static_cast<std::size_t>(c)], tokens, cell, margin + c * (size + margin),
                 margin + label_height + static_cast<int>(r) * (size + margin));
  const bool ok = example::write_png(path, image);
  std::printf("%s %s (%d x %d)\n", ok ? "wrote" : "FAILED to write", path.c_str(), image.width(), image.height());
  return ok;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s <output_dir> [tokens=128]\n", argv[0]);
    return 2;
  }
  const std::string output_dir = argv[1];
  const std::int64_t tokens = example::count_argument(argc, argv, 2, 128, 2, "<output_dir> [tokens=128]");
  if (!example::cpu_runs_this_build()) return 2;
  const int cell = std::max(1, static_cast<int>(256 / tokens));
  const std::vector<float> slopes = alibi::slopes(kModelHeads);

  // Attention weights of all heads at once: multi-query (one shared k), v = identity so out = P.
  const auto width = static_cast<std::size_t>(tokens);  // head_dim = tokens
  std::vector<float> q = example::random_floats(width * kModelHeads * width, 1);
  std::vector<float> k = example::random_floats(width * width, 2);
  std::vector<float> v(width * width, 0.0f), weights(q.size());
  for (std::size_t j = 0; j < width; ++j) v[j * width + j] = 1.0f;
  alibi::AttentionShape shape;
  shape.q_len = tokens;
  shape.kv_len = tokens;
  shape.num_heads = kModelHeads;
  shape.num_kv_heads = 1;
  shape.head_dim = static_cast<int>(tokens);
  alibi::attention(q.data(), k.data(), v.data(), weights.data(), shape);
  const auto weight = [&](int head, std::size_t i, std::size_t j) {
    return weights[(i * kModelHeads + static_cast<std::size_t>(head)) * width + j];
  };

  // Each row of P must be a distribution over the visible keys: a real check of the trick above.
  bool ok = true;
  for (int head = 0; head < kModelHeads; ++head)
    for (std::size_t i = 0; i < width; ++i) {
      double sum = 0.0;
      for (std::size_t j = 0; j < width; ++j) {
        sum += weight(head, i, j);
        if (j > i && weight(head, i, j) != 0.0f) ok = false;
      }
      if (std::abs(sum - 1.0) > 1e-5) ok = false;
    }

  std::vector<Panel> bias_panels, weight_panels;
  std::vector<std::string> labels;
  std::vector<float> bias(width * width);
  for (const int head : kShownHeads) {
    alibi::causal_bias(slopes[static_cast<std::size_t>(head)], tokens, tokens, bias.data());
    Panel bias_panel(width * width), weight_panel(width * width);
    for (std::size_t i = 0; i < width; ++i) {
      float row_max = 0.0f;
      for (std::size_t j = 0; j <= i; ++j) row_max = std::max(row_max, weight(head, i, j));
      for (std::size_t j = 0; j < width; ++j) {
        const float b = bias[i * width + j];
        bias_panel[i * width + j] = std::isinf(b) ? kMasked : viridis(std::exp(static_cast<double>(b)));
        weight_panel[i * width + j] =
            j > i ? kMasked : viridis(static_cast<double>(weight(head, i, j)) / static_cast<double>(row_max));
      }
    }
    bias_panels.push_back(std::move(bias_panel));
    weight_panels.push_back(std::move(weight_panel));
    // The default slopes of 8 heads are 1/2, 1/4, ..., 1/256: label them as fractions.
    const long inverse = std::lround(1.0 / static_cast<double>(slopes[static_cast<std::size_t>(head)]));
    labels.push_back("head " + std::to_string(head) + "  m=1/" + std::to_string(inverse));
    std::printf("head %d: slope 1/%ld, exp(bias) falls to 1/e at distance %ld\n", head, inverse, inverse);
  }

  std::error_code error;
  std::filesystem::create_directories(output_dir, error);
  const std::string prefix = (std::filesystem::path(output_dir) / "bias_heatmap").string();
  ok = write_grid(prefix + ".png", {&bias_panels, &weight_panels}, labels, tokens, cell) && ok;
  ok = write_grid(prefix + "_bias.png", {&bias_panels}, labels, tokens, cell) && ok;
  ok = write_grid(prefix + "_weights.png", {&weight_panels}, labels, tokens, cell) && ok;
  std::printf("%s\n", ok ? "OK" : "FAILED");
  return ok ? 0 : 1;
}
