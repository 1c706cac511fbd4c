// A pixel-statistics classifier for the demo model's pictures: background
// colour from the border, foreground colour as the most common other palette
// colour, shape from how the foreground fills its bounding box and where
// its mass sits. Independent of the engine: it only reads RGB pixels.
#pragma once
#include <array>
#include <map>
#include <string>
#include <vector>

#include "visiongen/visiongen.h"

namespace vg::test {

struct ShapeGuess {
  std::string shape, fg, bg;
  double fill = 0, centroid_y = 0;
};

inline const std::vector<std::pair<std::string, std::array<int, 3>>>& shape_palette() {
  static const std::vector<std::pair<std::string, std::array<int, 3>>> k = {
      {"red", {220, 30, 30}},   {"green", {30, 170, 50}},    {"blue", {30, 60, 220}},
      {"yellow", {240, 215, 30}}, {"white", {245, 245, 245}}, {"black", {15, 15, 15}}};
  return k;
}

inline int nearest_colour(const uint8_t* p, int* dist2) {
  int best = 0, bd = 1 << 30;
  for (size_t i = 0; i < shape_palette().size(); ++i) {
    const auto& c = shape_palette()[i].second;
    const int d = (p[0] - c[0]) * (p[0] - c[0]) + (p[1] - c[1]) * (p[1] - c[1]) + (p[2] - c[2]) * (p[2] - c[2]);
    if (d < bd) bd = d, best = static_cast<int>(i);
  }
  if (dist2) *dist2 = bd;
  return best;
}

inline ShapeGuess classify_shape(const Image& img) {
  const int w = img.width, h = img.height, ch = img.channels;
  std::map<int, int> border, inner;
  std::vector<int> label(static_cast<size_t>(w) * h);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      int d2;
      const int c = nearest_colour(&img.pixels[(static_cast<size_t>(y) * w + x) * ch], &d2);
      label[static_cast<size_t>(y) * w + x] = d2 < 90 * 90 ? c : -1;
      if (x < 2 || y < 2 || x >= w - 2 || y >= h - 2) border[c]++;
    }
  ShapeGuess g;
  int bg = -1, most = 0;
  for (auto [c, n] : border)
    if (n > most) most = n, bg = c;
  for (int v : label)
    if (v >= 0 && v != bg) inner[v]++;
  int fg = -1;
  most = 0;
  for (auto [c, n] : inner)
    if (n > most) most = n, fg = c;
  g.bg = bg >= 0 ? shape_palette()[bg].first : "?";
  if (fg < 0 || most < 30) return g;
  g.fg = shape_palette()[fg].first;
  int x0 = w, y0 = h, x1 = -1, y1 = -1;
  double cy = 0;
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      if (label[static_cast<size_t>(y) * w + x] == fg) {
        x0 = std::min(x0, x), y0 = std::min(y0, y), x1 = std::max(x1, x), y1 = std::max(y1, y);
        cy += y;
      }
  const double area = static_cast<double>(x1 - x0 + 1) * (y1 - y0 + 1);
  g.fill = most / area;
  g.centroid_y = (cy / most - y0) / std::max(1, y1 - y0);
  // Ideal fills of the bounding box: square 1, disk pi/4, triangle 1/2, star
  // about 0.38. Hard labels drop the anti-aliased rim, so measured fills run
  // several percent lower (squares >= 0.85, disks <= 0.77 on the demo model);
  // 0.82 splits square from disk.
  if (g.fill > 0.82) g.shape = "square";
  else if (g.fill > 0.66) g.shape = "circle";
  else g.shape = g.centroid_y > 0.57 ? "triangle" : "star";
  return g;
}

}  // namespace vg::test
