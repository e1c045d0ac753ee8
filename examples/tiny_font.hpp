#pragma once
// A 5 x 7 pixel bitmap font with just the glyphs the heatmap labels use ("head 7  m=1/256"), so the
// pictures need no font library.
#include <array>
#include <cstdint>
#include <string>

#include "png_writer.hpp"

namespace example {

// Each glyph is 7 rows of 5 bits, most significant bit leftmost.
inline const std::array<std::uint8_t, 7>* glyph(char c) {
  struct Glyph {
    char c;
    std::array<std::uint8_t, 7> rows;
  };
  static const Glyph glyphs[] = {
      {'0', {0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E}}, {'1', {0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E}},
      {'2', {0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F}}, {'3', {0x1E, 0x01, 0x01, 0x0E, 0x01, 0x01, 0x1E}},
      {'4', {0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02}}, {'5', {0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E}},
      {'6', {0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E}}, {'7', {0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08}},
      {'8', {0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E}}, {'9', {0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C}},
      {'h', {0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x11}}, {'e', {0x00, 0x00, 0x0E, 0x11, 0x1F, 0x10, 0x0E}},
      {'a', {0x00, 0x00, 0x0E, 0x01, 0x0F, 0x11, 0x0F}}, {'d', {0x01, 0x01, 0x0D, 0x13, 0x11, 0x11, 0x0F}},
      {'m', {0x00, 0x00, 0x1A, 0x15, 0x15, 0x11, 0x11}}, {'=', {0x00, 0x00, 0x1F, 0x00, 0x1F, 0x00, 0x00}},
      {'/', {0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x00}}, {' ', {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}},
  };
  for (const Glyph& g : glyphs)
    if (g.c == c) return &g.rows;
  return nullptr;
}

/// Draws `text` with its top-left corner at (left, top), each font pixel a `scale` x `scale` square.
/// Characters without a glyph are left blank.
inline void draw_text(RgbImage& image, const std::string& text, int left, int top, int scale,
                      std::array<std::uint8_t, 3> colour) {
  for (std::size_t n = 0; n < text.size(); ++n) {
    const std::array<std::uint8_t, 7>* rows = glyph(text[n]);
    if (rows == nullptr) continue;
    const int x0 = left + static_cast<int>(n) * 6 * scale;  // 5 columns + 1 of spacing
    for (int r = 0; r < 7; ++r)
      for (int c = 0; c < 5; ++c)
        if (((*rows)[static_cast<std::size_t>(r)] >> (4 - c)) & 1)
          for (int dy = 0; dy < scale; ++dy)
            for (int dx = 0; dx < scale; ++dx) {
              const int x = x0 + c * scale + dx, y = top + r * scale + dy;
              if (x >= 0 && y >= 0 && x < image.width() && y < image.height()) image.set(x, y, colour);
            }
  }
}

/// Pixel width of `text` drawn at `scale`.
inline int text_width(const std::string& text, int scale) {
  return static_cast<int>(text.size()) * 6 * scale - scale;
}

}  // namespace example
