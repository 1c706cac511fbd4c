// The demo model draws what the prompt says: 24 prompts covering every shape
// and colour, classified from pixel statistics, through the CLI and the
// server's OpenAI endpoint.
#include <sys/wait.h>

#include <cmath>
#include <filesystem>

#include "io/image_decode.h"
#include "server/http_util.h"
#include "server/server.h"
#include "shape_classifier.h"
#include "test_util.h"

namespace vg {
namespace {

namespace fs = std::filesystem;

std::string demo_model() { return std::string(VG_SOURCE_DIR) + "/models/visiongen-shapes"; }

struct Prompt {
  std::string shape, fg, bg;
  std::string text() const { return "a " + fg + " " + shape + " on a " + bg + " background"; }
};

std::vector<Prompt> prompts() {
  static const char* kShapes[] = {"circle", "square", "triangle", "star"};
  std::vector<Prompt> out;
  const auto& pal = test::shape_palette();
  for (int i = 0; i < 24; ++i) {
    const int fg = i % 6, bg = (fg + 1 + i / 6) % 6;
    out.push_back({kShapes[i % 4], pal[fg].first, pal[bg].first});
  }
  return out;
}

// A tiny rasteriser for the classifier's own test (not the training renderer).
Image draw(const std::string& shape, std::array<int, 3> fg, std::array<int, 3> bg) {
  Image img;
  img.width = img.height = 64;
  img.pixels.resize(64 * 64 * 3);
  const double cx = 30, cy = 33, r = 17;
  auto inside = [&](double x, double y) {
    const double dx = x - cx, dy = y - cy;
    if (shape == "circle") return dx * dx + dy * dy <= r * r;
    if (shape == "square") return std::fabs(dx) <= 0.85 * r && std::fabs(dy) <= 0.85 * r;
    if (shape == "triangle") {
      const double top = cy - 0.95 * r, bottom = cy + 0.85 * r;
      return y >= top && y <= bottom && std::fabs(dx) <= (y - top) / (bottom - top) * r;
    }
    // star: polygon of 10 vertices, outer r, inner 0.38 r, pointing up
    std::vector<std::pair<double, double>> v;
    for (int k = 0; k < 10; ++k) {
      const double a = -M_PI / 2 + k * M_PI / 5, rr = k % 2 ? 0.38 * r : r;
      v.push_back({cx + rr * std::cos(a), cy + rr * std::sin(a)});
    }
    bool in = false;
    for (size_t i = 0, j = v.size() - 1; i < v.size(); j = i++)
      if ((v[i].second > y) != (v[j].second > y) &&
          x < (v[j].first - v[i].first) * (y - v[i].second) / (v[j].second - v[i].second) + v[i].first)
        in = !in;
    return in;
  };
  for (int y = 0; y < 64; ++y)
    for (int x = 0; x < 64; ++x) {
      const auto& c = inside(x + 0.5, y + 0.5) ? fg : bg;
      for (int k = 0; k < 3; ++k) img.pixels[(y * 64 + x) * 3 + k] = static_cast<uint8_t>(c[k]);
    }
  return img;
}

TEST(ShapeClassifier, RecognisesDrawnShapesAndColours) {
  const auto& pal = test::shape_palette();
  for (const char* s : {"circle", "square", "triangle", "star"}) {
    auto g = test::classify_shape(draw(s, pal[0].second, pal[2].second));
    EXPECT_EQ(g.shape, s) << "fill " << g.fill << " centroid " << g.centroid_y;
    EXPECT_EQ(g.fg, "red");
    EXPECT_EQ(g.bg, "blue");
  }
}

int score(const std::vector<Image>& images, std::string* report) {
  int ok = 0;
  const auto ps = prompts();
  for (size_t i = 0; i < ps.size(); ++i) {
    auto g = test::classify_shape(images[i]);
    const bool good = g.shape == ps[i].shape && g.fg == ps[i].fg && g.bg == ps[i].bg;
    ok += good;
    *report += (good ? "ok   " : "MISS ") + ps[i].text() + " -> " + g.fg + " " + g.shape + " on " + g.bg + "\n";
  }
  return ok;
}

TEST(DemoModelSlow, CliDrawsWhatThePromptSays) {
  ASSERT_TRUE(fs::exists(demo_model() + "/model_index.json")) << demo_model();
  const fs::path dir = fs::path(testing::TempDir()) / "vg_semantic";
  fs::create_directories(dir);
  std::vector<Image> images;
  const auto ps = prompts();
  for (size_t i = 0; i < ps.size(); ++i) {
    const std::string out = (dir / ("p" + std::to_string(i) + ".png")).string();
    // no -m: the CLI uses the demo model by default
    const std::string cmd = std::string(VG_CLI_PATH) + " generate -q -p '" + ps[i].text() + "' --seed " +
                            std::to_string(1000 + i) + " -o " + out;
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
    images.push_back(read_image_file(out));
  }
  std::string report;
  const int ok = score(images, &report);
  EXPECT_GE(ok, 22) << report;  // at least 90% of 24
  fs::remove_all(dir);
}

TEST(DemoModelSlow, OpenAiEndpointDrawsWhatThePromptSays) {
  server::ServerOptions o;
  o.port = 0;
  o.default_model = demo_model();
  o.max_queue = 32;
  auto s = server::Server::create(o);
  ASSERT_TRUE(s);
  auto port = (*s)->start();
  ASSERT_TRUE(port);
  httplib::Client c("127.0.0.1", *port);
  c.set_read_timeout(120, 0);
  std::vector<Image> images;
  const auto ps = prompts();
  for (size_t i = 0; i < ps.size(); ++i) {
    nlohmann::json req = {{"model", "dall-e-2"}, {"prompt", ps[i].text()}, {"seed", 1000 + static_cast<int>(i)},
                          {"response_format", "b64_json"}};
    auto r = c.Post("/v1/images/generations", req.dump(), "application/json");
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 200) << r->body;
    auto png = server::base64_decode(nlohmann::json::parse(r->body)["data"][0]["b64_json"].get<std::string>());
    ASSERT_TRUE(png);
    images.push_back(decode_image(*png, "response"));
  }
  std::string report;
  const int ok = score(images, &report);
  EXPECT_GE(ok, 22) << report;
  (*s)->stop();
}

}  // namespace
}  // namespace vg
