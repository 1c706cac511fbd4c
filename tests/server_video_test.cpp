// Wan video through the CLI and the server: the same clip (lossless animated
// WebP, so equal bytes mean equal frames) from `visiongen generate`, the
// native jobs API and OpenAI's POST /v1/videos for the same seed; a running
// video job cancelled stops within a step; frames folders and bad outputs.
#include <httplib.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "io/atomic_file.h"
#include "io/image_decode.h"
#include "io/image_io.h"
#include "server/http_util.h"
#include "server/server.h"
#include "server_util.h"
#include "test_util.h"

namespace vg {
namespace {

using nlohmann::json;
std::string wan() { return test::fixtures() + "/wan22-tiny/models/wan22-tiny-ti2v"; }

test::RunningServer start() {
  server::ServerOptions o;
  o.default_model = wan();
  o.precision = "fp32";
  return test::start_server(o, 120);
}

// Polls GET `path` until its "status" is one of `done`.
json poll(httplib::Client& c, const std::string& path, std::initializer_list<const char*> done) {
  for (int i = 0; i < 600; ++i) {
    auto r = c.Get(path);
    if (!r) return json();
    json j = json::parse(r->body);
    for (const char* d : done)
      if (j.value("status", "") == d) return j;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ADD_FAILURE() << path << " did not finish";
  return json();
}

TEST(ServerVideo, CliJobsAndOpenAiVideosGiveTheSameClip) {
  const std::string dir = testing::TempDir() + "/vg_video_same";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  auto cli = test::run_cli("generate -q -m " + wan() + " -p \"a red fox runs\" -W 64 -H 64 --frames 5 --steps 2 --seed 3 "
                           "--precision fp32 -o " + dir + "/clip.webp --output-frames " + dir + "/frames");
  ASSERT_EQ(cli.code, 0) << cli.out;
  const std::string want = read_file(dir + "/clip.webp");
  for (int f = 0; f < 5; ++f) {
    char name[32];
    std::snprintf(name, sizeof name, "/frames/frame_%04d.png", f);
    EXPECT_TRUE(path_exists(dir + name)) << name;
  }
  EXPECT_FALSE(path_exists(dir + "/frames/frame_0005.png"));

  auto srv = start();
  auto c = srv.client();
  // native jobs API, lossless WebP
  const json body = {{"prompt", "a red fox runs"}, {"width", 64},  {"height", 64}, {"frames", 5},
                     {"steps", 2},                 {"seed", 3},    {"video_format", "webp"}};
  auto r = c.Post("/v1/jobs", body.dump(), "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 202) << r->body;
  const std::string id = json::parse(r->body)["id"];
  const json done = poll(c, "/v1/jobs/" + id, {"completed", "failed"});
  ASSERT_EQ(done.value("status", ""), "completed") << done.dump();
  const json& v = done["result"]["videos"][0];
  EXPECT_EQ(v["frames"], 5);
  EXPECT_EQ(v["mime"], "image/webp");
  auto art = c.Get(v["uri"].get<std::string>());
  ASSERT_TRUE(art);
  EXPECT_EQ(art->get_header_value("Content-Type"), "image/webp");
  EXPECT_EQ(art->body, want) << "the jobs API's clip differs from the CLI's";

  // OpenAI's video API shape: queued -> completed, then the content
  const json oa = {{"prompt", "a red fox runs"}, {"size", "64x64"}, {"frames", 5}, {"steps", 2}, {"seed", 3},
                   {"video_format", "webp"}, {"model", "sora-2"}};
  r = c.Post("/v1/videos", oa.dump(), "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  const json created = json::parse(r->body);
  EXPECT_EQ(created["object"], "video");
  const std::string vid = created["id"];
  const json fin = poll(c, "/v1/videos/" + vid, {"completed", "failed"});
  ASSERT_EQ(fin.value("status", ""), "completed") << fin.dump();
  EXPECT_EQ(fin["progress"], 100);
  EXPECT_EQ(fin["size"], "64x64");
  auto content = c.Get("/v1/videos/" + vid + "/content");
  ASSERT_TRUE(content);
  EXPECT_EQ(content->body, want) << "POST /v1/videos' clip differs from the CLI's";
  // the default container is MP4 (H.264)
  r = c.Post("/v1/videos", json{{"prompt", "a red fox runs"}, {"size", "64x64"}, {"frames", 5}, {"steps", 1}}.dump(),
             "application/json");
  ASSERT_TRUE(r);
  const std::string mp4id = json::parse(r->body)["id"];
  ASSERT_EQ(poll(c, "/v1/videos/" + mp4id, {"completed", "failed"}).value("status", ""), "completed");
  content = c.Get("/v1/videos/" + mp4id + "/content");
  ASSERT_TRUE(content);
  EXPECT_EQ(content->get_header_value("Content-Type"), "video/mp4");
  EXPECT_EQ(content->body.substr(4, 4), "ftyp");
  // unknown ids and variants
  EXPECT_EQ(c.Get("/v1/videos/job_nope")->status, 404);
  EXPECT_EQ(c.Get("/v1/videos/" + vid + "/content?variant=spritesheet")->status, 400);
}

// `--output-frames` of a fixture case gives diffusers' frames (the fixture's
// first, middle and last PNGs); --artifact-dir keeps the clip with its frames.
TEST(ServerVideo, CliFramesMatchTheFixturePngs) {
  const std::string dir = testing::TempDir() + "/vg_video_frames";
  std::filesystem::remove_all(dir);
  const auto& cases = test::fixture_manifest("wan22-tiny")["pipelines"];
  int checked = 0;
  for (const auto& c : cases) {
    if (c["name"] != "t2v_unipc_f5_s4_cfg5_neg_96x64" && c["name"] != "i2v_unipc_f9_s4_cfg5_neg_96x64") continue;
    const auto& k = c["cli"];
    std::string cmd = "generate -q -m " + wan() + " -p \"" + k["prompt"].get<std::string>() + "\" -n \"" +
                      k["negative_prompt"].get<std::string>() + "\" -W " + std::to_string(k["width"].get<int>()) +
                      " -H " + std::to_string(k["height"].get<int>()) + " --frames " + std::to_string(k["frames"].get<int>()) +
                      " --steps " + std::to_string(k["steps"].get<int>()) + " --seed " + std::to_string(k["seed"].get<int>()) +
                      " --cfg-scale 5 --sampler " + k["sampler"].get<std::string>() + " --precision fp32 --output-frames " +
                      dir + "/" + c["name"].get<std::string>() + " -o " + dir + "/clip.webm --artifact-dir " + dir + "/art";
    if (k["init_image"].is_string())
      cmd += " --init-image " + test::fixtures() + "/wan22-tiny/" + k["init_image"].get<std::string>();
    auto r = test::run_cli(cmd);
    ASSERT_EQ(r.code, 0) << r.out;
    for (const auto& [which, png] : c["pngs"].items()) {
      const std::string ref = test::fixtures() + "/wan22-tiny/" + png.get<std::string>();
      const std::string frame = png.get<std::string>().substr(png.get<std::string>().find("_frame") + 6, 2);
      const std::string got = dir + "/" + c["name"].get<std::string>() + "/frame_00" + frame + ".png";
      const Image a = decode_png(read_file(got), got), b = decode_png(read_file(ref), ref);
      ASSERT_EQ(a.pixels.size(), b.pixels.size()) << got;
      EXPECT_GE(test::frac_within(test::image01(a), test::image01(b), 1.0 / 255 + 1e-6), 0.99) << got;
      ++checked;
    }
  }
  EXPECT_EQ(checked, 6);
  // the artifact store holds the clips as video/webm with their frame count
  auto list = test::run_cli("artifacts --dir " + dir + "/art list --json");
  ASSERT_EQ(list.code, 0) << list.out;
  EXPECT_NE(list.out.find("video/webm"), std::string::npos) << list.out;
  EXPECT_NE(list.out.find("\"frames\":9"), std::string::npos) << list.out;
}

TEST(ServerVideo, CancellingAVideoJobStopsWithinAStep) {
  auto srv = start();
  auto c = srv.client();
  const json body = {{"prompt", "waves"}, {"width", 64}, {"height", 64}, {"frames", 9}, {"steps", 500}, {"seed", 1}};
  auto r = c.Post("/v1/jobs", body.dump(), "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 202) << r->body;
  const std::string id = json::parse(r->body)["id"];
  int step = 0;
  for (int i = 0; i < 600 && step < 2; ++i) {
    step = json::parse(c.Get("/v1/jobs/" + id)->body).value("step", 0);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_GE(step, 2);
  r = c.Post("/v1/jobs/" + id + "/cancel", "", "application/json");
  ASSERT_TRUE(r);
  const int at_cancel = json::parse(c.Get("/v1/jobs/" + id)->body).value("step", 0);
  const json end = poll(c, "/v1/jobs/" + id, {"cancelled", "completed", "failed"});
  EXPECT_EQ(end["status"], "cancelled");
  EXPECT_LE(end.value("step", 0), at_cancel + 1);
  EXPECT_EQ(end["error"]["code"], "cancelled");
}

TEST(ServerVideo, CliRefusesImageOutputsAndUnknownExtensions) {
  const std::string dir = testing::TempDir() + "/vg_video_bad";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string base = "generate -q -m " + wan() + " -p x -W 64 -H 64 --steps 1 --precision fp32 ";
  auto r = test::run_cli(base + "--frames 5 -o " + dir + "/clip.avi");
  EXPECT_EQ(r.code, 10 + static_cast<int>(ErrorCode::kInvalidArgument)) << r.out;
  EXPECT_NE(r.out.find(".mp4, .webm, .webp or .gif"), std::string::npos) << r.out;
  r = test::run_cli(base + "--frames 5 -o " + dir + "/clip.png");
  EXPECT_EQ(r.code, 10 + static_cast<int>(ErrorCode::kInvalidArgument)) << r.out;
  EXPECT_TRUE(std::filesystem::is_empty(dir));
  // frames not 4k+1 with --strict: refused before any work
  r = test::run_cli(base + "--frames 6 --strict -o " + dir + "/clip.mp4");
  EXPECT_EQ(r.code, 10 + static_cast<int>(ErrorCode::kInvalidArgument)) << r.out;
  EXPECT_NE(r.out.find("4k+1"), std::string::npos) << r.out;
  // without it: snapped with a warning; the mp4 has 5 frames at the asked fps
  r = test::run_cli("generate -m " + wan() + " -p x -W 64 -H 64 --frames 6 --fps 12 --steps 1 --precision fp32 -o " + dir + "/clip.mp4");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("becomes 5"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("5 frames at 12 fps"), std::string::npos) << r.out;
  const std::string probe = "ffprobe -v error -count_frames -select_streams v:0 -show_entries "
                            "stream=nb_read_frames,r_frame_rate,width,height -of csv=p=0 " + dir + "/clip.mp4";
  FILE* p = popen(probe.c_str(), "r");
  char buf[256] = {0};
  const size_t n = fread(buf, 1, sizeof buf - 1, p);
  pclose(p);
  EXPECT_EQ(std::string(buf, n), "64,64,12/1,5\n");
}

}  // namespace
}  // namespace vg
