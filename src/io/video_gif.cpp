// GIF helpers: a median-cut palette shared by all frames (no per-frame palette
// flicker), nearest-colour mapping, and the comment extension.
#include <algorithm>
#include <array>
#include <limits>

#include "core/error.h"
#include "io/video_encoders.h"

namespace vg {

namespace {

// A populated cell of a 5-bit-per-channel colour histogram.
struct Cell {
  std::array<double, 3> mean;
  double count;
};

struct Box {
  size_t begin, end;  // range of cells
  int axis = 0;
  double spread = 0;  // largest channel range
};

Box measure(std::vector<Cell>& cells, size_t begin, size_t end) {
  Box b{begin, end};
  for (int c = 0; c < 3; ++c) {
    double lo = 255, hi = 0;
    for (size_t i = begin; i < end; ++i)
      lo = std::min(lo, cells[i].mean[c]), hi = std::max(hi, cells[i].mean[c]);
    if (hi - lo > b.spread || c == 0) b.spread = hi - lo, b.axis = c;
  }
  if (end - begin < 2) b.spread = -1;  // cannot split
  return b;
}

}  // namespace

std::vector<uint32_t> gif_palette(const Video& v) {
  std::vector<Cell> hist(1 << 15, Cell{{0, 0, 0}, 0});
  // at most ~4M samples: long HD videos are subsampled evenly
  size_t total = 0;
  for (const Image& f : v.frames) total += f.pixels.size() / 3;
  const size_t step = std::max<size_t>(1, total / (size_t{1} << 22));
  size_t k = 0;
  for (const Image& f : v.frames)
    for (size_t i = 0; i < f.pixels.size(); i += 3, ++k) {
      if (k % step) continue;
      const uint8_t* p = &f.pixels[i];
      Cell& c = hist[(p[0] >> 3) << 10 | (p[1] >> 3) << 5 | p[2] >> 3];
      for (int ch = 0; ch < 3; ++ch) c.mean[ch] += p[ch];
      c.count += 1;
    }
  std::vector<Cell> cells;
  for (Cell& c : hist)
    if (c.count > 0) {
      for (double& m : c.mean) m /= c.count;
      cells.push_back(c);
    }
  std::vector<Box> boxes{measure(cells, 0, cells.size())};
  while (boxes.size() < 256) {
    auto it = std::max_element(boxes.begin(), boxes.end(),
                               [](const Box& a, const Box& b) { return a.spread < b.spread; });
    if (it->spread <= 0) break;
    const Box b = *it;
    std::sort(cells.begin() + b.begin, cells.begin() + b.end,
              [&](const Cell& x, const Cell& y) { return x.mean[b.axis] < y.mean[b.axis]; });
    double weight = 0, half = 0;
    for (size_t i = b.begin; i < b.end; ++i) weight += cells[i].count;
    size_t mid = b.begin + 1;  // split at the weighted median, keeping both halves non-empty
    for (size_t i = b.begin; i < b.end - 1; ++i) {
      half += cells[i].count;
      mid = i + 1;
      if (half >= weight / 2) break;
    }
    *it = measure(cells, b.begin, mid);
    boxes.push_back(measure(cells, mid, b.end));
  }
  std::vector<uint32_t> palette(256, 0xff000000u);
  for (size_t i = 0; i < boxes.size() && !cells.empty(); ++i) {
    double sum[3] = {0, 0, 0}, n = 0;
    for (size_t j = boxes[i].begin; j < boxes[i].end; ++j) {
      for (int c = 0; c < 3; ++c) sum[c] += cells[j].mean[c] * cells[j].count;
      n += cells[j].count;
    }
    uint32_t rgb = 0;
    for (int c = 0; c < 3; ++c)
      rgb = rgb << 8 | static_cast<uint32_t>(std::clamp(sum[c] / n + 0.5, 0.0, 255.0));
    palette[i] = 0xff000000u | rgb;
  }
  return palette;
}

PaletteMapper::PaletteMapper(const std::vector<uint32_t>& palette)
    : palette_(palette), cache_(size_t{1} << 18, -1) {}

void PaletteMapper::map(const Image& frame, uint8_t* out, int out_stride) {
  for (int y = 0; y < frame.height; ++y)
    for (int x = 0; x < frame.width; ++x) {
      const uint8_t* p = &frame.pixels[(static_cast<size_t>(y) * frame.width + x) * 3];
      const size_t key = static_cast<size_t>(p[0] >> 2) << 12 | (p[1] >> 2) << 6 | p[2] >> 2;
      if (cache_[key] < 0) {
        // nearest entry to the centre of the 6-bit cell
        const int r = (p[0] & ~3) + 2, g = (p[1] & ~3) + 2, b = (p[2] & ~3) + 2;
        int best = 0, best_d = std::numeric_limits<int>::max();
        for (size_t i = 0; i < palette_.size(); ++i) {
          const int dr = r - static_cast<int>(palette_[i] >> 16 & 255);
          const int dg = g - static_cast<int>(palette_[i] >> 8 & 255);
          const int db = b - static_cast<int>(palette_[i] & 255);
          const int d = 2 * dr * dr + 4 * dg * dg + 3 * db * db;  // rough perceptual weights
          if (d < best_d) best_d = d, best = static_cast<int>(i);
        }
        cache_[key] = static_cast<int16_t>(best);
      }
      out[static_cast<size_t>(y) * out_stride + x] = static_cast<uint8_t>(cache_[key]);
    }
}

std::string gif_insert_comment(const std::string& gif, const std::string& comment) {
  if (comment.empty()) return gif;
  if (gif.size() < 13 || gif.compare(0, 6, "GIF89a") != 0)
    fail(ErrorCode::kInternal, "the GIF encoder did not produce a GIF89a header");
  const auto flags = static_cast<uint8_t>(gif[10]);
  size_t pos = 13;  // header + logical screen descriptor
  if (flags & 0x80) pos += 3 * (size_t{2} << (flags & 7));
  if (pos > gif.size()) fail(ErrorCode::kInternal, "the GIF encoder produced a truncated header");
  std::string ext = "\x21\xfe";  // comment extension: sub-blocks of at most 255 bytes, then 0
  for (size_t i = 0; i < comment.size(); i += 255) {
    const size_t n = std::min<size_t>(255, comment.size() - i);
    ext += static_cast<char>(n);
    ext.append(comment, i, n);
  }
  ext += '\0';
  std::string out = gif.substr(0, pos);
  out += ext;
  out.append(gif, pos, std::string::npos);
  return out;
}

}  // namespace vg
