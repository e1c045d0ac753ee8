#pragma once
// A minimal PNG writer with no dependency: no filtering and a zlib stream made of stored (uncompressed)
// deflate blocks. Images with at most 256 distinct colours are written with a palette (one byte per
// pixel, a third of the RGB size, which matters without compression); others as 8-bit RGB.
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <fstream>
#include <map>
#include <string>
#include <vector>

namespace example {

class RgbImage {
 public:
  RgbImage(int width, int height, std::array<std::uint8_t, 3> background)
      : width_(width),
        height_(height),
        pixels_(static_cast<std::size_t>(width) * static_cast<std::size_t>(height) * 3) {
    for (std::size_t i = 0; i < pixels_.size(); ++i) pixels_[i] = background[i % 3];
  }
  int width() const { return width_; }
  int height() const { return height_; }
  void set(int x, int y, std::array<std::uint8_t, 3> rgb) {
    std::uint8_t* p =
        &pixels_[(static_cast<std::size_t>(y) * static_cast<std::size_t>(width_) + static_cast<std::size_t>(x)) * 3];
    p[0] = rgb[0], p[1] = rgb[1], p[2] = rgb[2];
  }
  const std::uint8_t* row(int y) const {
    return &pixels_[static_cast<std::size_t>(y) * static_cast<std::size_t>(width_) * 3];
  }

 private:
  int width_, height_;
  std::vector<std::uint8_t> pixels_;
};

namespace png_detail {

inline std::uint32_t crc32(const std::uint8_t* data, std::size_t size, std::uint32_t crc = 0) {
  static const std::array<std::uint32_t, 256> table = [] {
    std::array<std::uint32_t, 256> t{};
    for (std::uint32_t n = 0; n < 256; ++n) {
      std::uint32_t c = n;
      for (int bit = 0; bit < 8; ++bit) c = (c & 1u) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[n] = c;
    }
    return t;
  }();
  crc = ~crc;
  for (std::size_t i = 0; i < size; ++i) crc = table[(crc ^ data[i]) & 0xFFu] ^ (crc >> 8);
  return ~crc;
}

inline std::uint32_t adler32(const std::vector<std::uint8_t>& data) {
  std::uint32_t a = 1, b = 0;
  for (const std::uint8_t byte : data) {
    a = (a + byte) % 65521u;
    b = (b + a) % 65521u;
  }
  return (b << 16) | a;
}

inline void put_u32(std::vector<std::uint8_t>& out, std::uint32_t value) {  // PNG and zlib are big-endian
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<std::uint8_t>(value >> shift));
}

inline void put_chunk(std::ofstream& file, const char* type, const std::vector<std::uint8_t>& data) {
  std::vector<std::uint8_t> chunk;
  put_u32(chunk, static_cast<std::uint32_t>(data.size()));
  chunk.insert(chunk.end(), type, type + 4);
  chunk.insert(chunk.end(), data.begin(), data.end());
  put_u32(chunk, crc32(chunk.data() + 4, chunk.size() - 4));  // the CRC covers type and data
  file.write(reinterpret_cast<const char*>(chunk.data()), static_cast<std::streamsize>(chunk.size()));
}

}  // namespace png_detail

/// Writes `image` to `path`; returns false if the file cannot be written.
inline bool write_png(const std::string& path, const RgbImage& image) {
  using namespace png_detail;
  std::ofstream file(path, std::ios::binary);
  if (!file) return false;
  static const std::uint8_t signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  file.write(reinterpret_cast<const char*>(signature), sizeof signature);

  const auto width = static_cast<std::size_t>(image.width());
  std::map<std::uint32_t, std::uint8_t> palette;  // colour 0xRRGGBB -> index
  for (int y = 0; y < image.height() && palette.size() <= 256; ++y)
    for (std::size_t x = 0; x < width && palette.size() <= 256; ++x) {
      const std::uint8_t* p = image.row(y) + 3 * x;
      palette.emplace((std::uint32_t{p[0]} << 16) | (std::uint32_t{p[1]} << 8) | p[2], 0);
    }
  const bool indexed = palette.size() <= 256;

  std::vector<std::uint8_t> header;
  put_u32(header, static_cast<std::uint32_t>(image.width()));
  put_u32(header, static_cast<std::uint32_t>(image.height()));
  // 8 bits per sample; colour type 3 (palette) or 2 (RGB); deflate; no filter; no interlace.
  header.insert(header.end(), {8, static_cast<std::uint8_t>(indexed ? 3 : 2), 0, 0, 0});
  put_chunk(file, "IHDR", header);
  if (indexed) {
    std::vector<std::uint8_t> entries;
    std::uint8_t index = 0;
    for (auto& [colour, slot] : palette) {
      slot = index++;
      entries.insert(entries.end(), {static_cast<std::uint8_t>(colour >> 16), static_cast<std::uint8_t>(colour >> 8),
                                     static_cast<std::uint8_t>(colour)});
    }
    put_chunk(file, "PLTE", entries);
  }

  // Scanlines, each led by filter type 0 (none).
  std::vector<std::uint8_t> raw;
  const std::size_t row_bytes = indexed ? width : width * 3;
  raw.reserve((row_bytes + 1) * static_cast<std::size_t>(image.height()));
  for (int y = 0; y < image.height(); ++y) {
    raw.push_back(0);
    if (!indexed) {
      raw.insert(raw.end(), image.row(y), image.row(y) + row_bytes);
      continue;
    }
    for (std::size_t x = 0; x < width; ++x) {
      const std::uint8_t* p = image.row(y) + 3 * x;
      raw.push_back(palette[(std::uint32_t{p[0]} << 16) | (std::uint32_t{p[1]} << 8) | p[2]]);
    }
  }

  // zlib header (deflate, 32 KiB window, no dictionary; 0x7801 is a multiple of 31 as required), stored
  // blocks of at most 65535 bytes (byte 0/1 = not last/last, then LEN and its complement, little-endian),
  // then the Adler-32 of the uncompressed bytes.
  std::vector<std::uint8_t> zlib = {0x78, 0x01};
  std::size_t offset = 0;
  do {
    const std::size_t length = std::min<std::size_t>(65535, raw.size() - offset);
    const bool last = offset + length == raw.size();
    zlib.push_back(last ? 1 : 0);
    const auto len = static_cast<std::uint16_t>(length);
    const auto nlen = static_cast<std::uint16_t>(~len);
    zlib.insert(zlib.end(), {static_cast<std::uint8_t>(len & 0xFFu), static_cast<std::uint8_t>(len >> 8),
                             static_cast<std::uint8_t>(nlen & 0xFFu), static_cast<std::uint8_t>(nlen >> 8)});
    zlib.insert(zlib.end(), raw.begin() + static_cast<std::ptrdiff_t>(offset),
                raw.begin() + static_cast<std::ptrdiff_t>(offset + length));
    offset += length;
  } while (offset < raw.size());
  put_u32(zlib, adler32(raw));
  put_chunk(file, "IDAT", zlib);
  put_chunk(file, "IEND", {});
  return static_cast<bool>(file);
}

}  // namespace example
