// Request bodies as the routes read them, without a server: the OpenAI and
// A1111 request parsers, and A1111 infotext parsing (format -> parse).
#include <gtest/gtest.h>

#include "core/error.h"
#include "core/infotext.h"
#include "io/atomic_file.h"
#include "io/image_io.h"
#include "server/a1111_request.h"
#include "server/openai_request.h"
#include "test_util.h"

namespace vg {
namespace {

using nlohmann::json;

std::string family_sd1(const std::string&) { return "sd1"; }

// The message of the VgException `f` throws, or "" if it throws none.
template <class F>
std::string error_of(F f, ErrorCode* code = nullptr) {
  try {
    f();
  } catch (const VgException& e) {
    if (code) *code = e.code();
    return e.what();
  }
  return "";
}

TEST(OpenAiRequest, ReadsFieldsAndFamilyMeaningOfGuidanceScale) {
  const json body = {{"model", "dall-e-3"}, {"prompt", "a cat"},       {"n", 2},
                     {"size", "64x32"},     {"seed", 5000000000LL},    {"cfg_scale", "6.5"},
                     {"steps", "12"},       {"response_format", "url"}};
  auto r = server::openai_request(body, family_sd1);
  EXPECT_EQ(r.job.model, "");
  EXPECT_EQ(r.job.params.batch_size, 2);
  EXPECT_EQ(r.job.params.width, 64);
  EXPECT_EQ(r.job.params.height, 32);
  EXPECT_EQ(r.job.params.seed, 5000000000LL);
  EXPECT_FLOAT_EQ(r.job.params.cfg_scale, 6.5f);
  EXPECT_EQ(r.job.params.steps, 12);
  EXPECT_EQ(r.response_format, "url");
  auto flux = server::openai_request({{"prompt", "x"}, {"guidance_scale", 3.5}},
                                     [](const std::string&) { return "flux"; });
  EXPECT_FLOAT_EQ(flux.job.params.guidance, 3.5f);
  auto zimage = server::openai_request({{"prompt", "x"}, {"guidance_scale", 3}},
                                       [](const std::string&) { return "zimage"; });
  EXPECT_FLOAT_EQ(zimage.job.params.cfg_scale, 4.0f);
}

TEST(OpenAiRequest, EveryBadFieldIsInvalidArgumentNamingIt) {
  const std::pair<const char*, json> bad[] = {{"cfg_scale", "abc"},
                                              {"cfg_scale", json::object()},
                                              {"cfg_scale", json::array()},
                                              {"cfg_scale", "1e99"},
                                              {"guidance_scale", "nan"},
                                              {"strength", "0.5x"},
                                              {"steps", 1e30},
                                              {"steps", "99999999999"},
                                              {"seed", "18446744073709551615"},
                                              {"n", 3000000000LL},
                                              {"sampler", 3},
                                              {"true_cfg_scale", true}};
  for (const auto& [field, value] : bad) {
    ErrorCode code = ErrorCode::kOk;
    const std::string msg = error_of(
        [&, f = field, v = value] {  // (clang 14 cannot capture structured bindings)
          server::openai_request({{"prompt", "x"}, {f, v}}, family_sd1);
        },
        &code);
    EXPECT_EQ(code, ErrorCode::kInvalidArgument) << field << "=" << value.dump();
    EXPECT_NE(msg.find(std::string("'") + field + "'"), std::string::npos) << msg;
  }
  EXPECT_NE(error_of([] { server::openai_request(json::array({1}), family_sd1); }).find("'prompt'"),
            std::string::npos);
}

TEST(OpenAiRequest, EditFormDecodesImageAndMask) {
  const std::string png = read_file(test::tiny() + "/inputs/test_image_64.png");
  httplib::MultipartFormDataMap form;
  form.emplace("prompt", httplib::MultipartFormData{"prompt", "a dog", "", ""});
  form.emplace("steps", httplib::MultipartFormData{"steps", "3", "", ""});
  EXPECT_NE(error_of([&] { server::openai_edit_request(form, family_sd1); }).find("'image' is required"),
            std::string::npos);
  form.emplace("image", httplib::MultipartFormData{"image", png, "a.png", "image/png"});
  form.emplace("mask", httplib::MultipartFormData{"mask", png, "m.png", "image/png"});
  auto r = server::openai_edit_request(form, family_sd1);
  ASSERT_TRUE(r.job.init_image && r.job.mask);
  EXPECT_EQ(r.job.init_image->width, 64);
  EXPECT_EQ(r.job.params.steps, 3);
  EXPECT_FLOAT_EQ(r.job.params.strength, 1.0f);  // a mask without strength: the whole masked area
  form.emplace("negative_prompt", httplib::MultipartFormData{"negative_prompt", "bad \xff text", "", ""});
  EXPECT_NE(
      error_of([&] { server::openai_edit_request(form, family_sd1); }).find("'negative_prompt' is not UTF-8"),
      std::string::npos);  // it would later fail to be written as JSON
  form.erase("negative_prompt");
  form.find("image")->second.content = "not an image";
  ErrorCode code = ErrorCode::kOk;
  error_of([&] { server::openai_edit_request(form, family_sd1); }, &code);
  EXPECT_NE(code, ErrorCode::kOk);
}

TEST(A1111Request, DefaultsModelAndStrictTypes) {
  auto r = server::a1111_request({{"prompt", "a"}, {"steps", 20.0}, {"batch_size", 2}, {"n_iter", 3}}, false,
                                 "m1", family_sd1);
  EXPECT_EQ(r.model, "m1");
  EXPECT_EQ(r.params.steps, 20);
  EXPECT_EQ(r.params.batch_size, 6);
  EXPECT_EQ(r.params.cfg_scale, 7.0f);  // A1111's own default for SD
  r = server::a1111_request({{"override_settings", {{"sd_model_checkpoint", "m2"}}}}, false, "m1",
                            family_sd1);
  EXPECT_EQ(r.model, "m2");
  const std::pair<const char*, json> bad[] = {
      {"steps", "x"},          {"steps", 1e300}, {"seed", json::array()},           {"cfg_scale", "abc"},
      {"batch_size", 1 << 30}, {"prompt", 5},    {"init_images", json::array({5})}, {"mask", 1},
      {"resize_mode", 7}};
  for (const auto& [field, value] : bad) {
    ErrorCode code = ErrorCode::kOk;
    json body = {{"init_images", {"AAAA"}}};
    if (std::string(field) == "mask" || std::string(field) == "resize_mode")
      body["init_images"] = {"data:image/png;base64," +
                             server::base64_encode(read_file(test::tiny() + "/inputs/test_image_64.png"))};
    body[field] = value;
    const std::string msg = error_of([&] { server::a1111_request(body, true, "m", family_sd1); }, &code);
    EXPECT_EQ(code, ErrorCode::kInvalidArgument) << field << "=" << value.dump() << ": " << msg;
    EXPECT_NE(msg.find(std::string("'") + field + "'"), std::string::npos) << msg;
  }
  ErrorCode code = ErrorCode::kOk;
  error_of([&] { server::a1111_request({{"prompt", "x"}}, true, "m", family_sd1); }, &code);
  EXPECT_EQ(code, ErrorCode::kFileNotFound);  // A1111's "Init image not found"
}

TEST(Infotext, ParseFollowsA1111) {
  auto m = parse_infotext(
      "a cat,\n  in a hat\nNegative prompt: blurry\nugly\nSteps: 20, Sampler: Euler a, Size: 512x768, "
      "Lora hashes: \"a: 1, b: 2\", Empty: , Quoted: \"x\\\"y\"");
  EXPECT_EQ(m["Prompt"], "a cat,\nin a hat");
  EXPECT_EQ(m["Negative prompt"], "blurry\nugly");
  EXPECT_EQ(m["Steps"], "20");
  EXPECT_EQ(m["Sampler"], "Euler a");
  EXPECT_EQ(m["Size-1"], "512");
  EXPECT_EQ(m["Size-2"], "768");
  EXPECT_EQ(m.count("Size"), 0u);
  EXPECT_EQ(m["Lora hashes"], "a: 1, b: 2");
  EXPECT_EQ(m.count("Empty"), 0u);  // an empty value is skipped, as A1111 does
  EXPECT_EQ(m["Quoted"], "x\"y");
  // fewer than three pairs on the last line: it is prompt text
  m = parse_infotext("hello\nStyle: oil, Mood: calm");
  EXPECT_EQ(m["Prompt"], "hello\nStyle: oil, Mood: calm");
  EXPECT_EQ(m.size(), 2u);
  EXPECT_EQ(parse_infotext("")["Prompt"], "");
}

TEST(Infotext, FormatThenParseRoundTripsTheFields) {
  GenerateParams p;
  p.prompt = "a red fox, (detailed:1.2)\nsecond line";
  p.negative_prompt = "blurry, low quality";
  p.steps = 7;
  p.sampler = "DPM++ 2M";
  p.scheduler = "karras";
  p.cfg_scale = 5.5f;
  p.clip_skip = 2;
  p.eta = 0.25f;
  p.init_image = "in.png";
  p.mask = "m.png";
  p.strength = 0.6f;
  p.mask_blur = 3;
  p.guidance = 3.5f;
  p.skip_layers = "7,8,9";
  p.skip_layer_scale = 2.5f;
  p.resize_mode = "crop_and_resize";
  p.vae = "/x/vae, v2: final.safetensors";
  const std::string text = format_infotext(p, 1234567890123ULL, 640, 384, "my model, v1", "abcdef012345");
  auto m = parse_infotext(text);
  EXPECT_EQ(m["Prompt"], p.prompt);
  EXPECT_EQ(m["Negative prompt"], p.negative_prompt);
  const std::map<std::string, std::string> want = {{"Steps", "7"},
                                                   {"Sampler", "DPM++ 2M"},
                                                   {"Schedule type", "karras"},
                                                   {"CFG scale", "5.5"},
                                                   {"Seed", "1234567890123"},
                                                   {"Size-1", "640"},
                                                   {"Size-2", "384"},
                                                   {"Model hash", "abcdef012345"},
                                                   {"Model", "my model, v1"},
                                                   {"Clip skip", "2"},
                                                   {"Eta", "0.25"},
                                                   {"Denoising strength", "0.6"},
                                                   {"Mask blur", "3"},
                                                   {"Guidance", "3.5"},
                                                   {"Skip layers", "7,8,9"},
                                                   {"Skip layer scale", "2.5"},
                                                   {"Resize mode", "crop_and_resize"},
                                                   {"VAE", "vae, v2: final.safetensors"},
                                                   {"Version", "visiongen"}};
  for (const auto& [k, v] : want) EXPECT_EQ(m[k], v) << k << " in " << text;
  // every params field with an infotext key that format wrote comes back
  for (const auto& f : param_fields())
    if (*f.infotext && text.find(std::string(f.infotext) + ": ") != std::string::npos)
      EXPECT_TRUE(m.count(f.infotext) || m.count(std::string(f.infotext) + "-1")) << f.infotext;
}

TEST(A1111Request, PngInfoReadsAndParsesParameters) {
  Image img;
  img.width = img.height = 8;
  img.channels = 3;
  img.pixels.assign(8 * 8 * 3, 100);
  GenerateParams p;
  p.prompt = "a cat";
  const std::string text = format_infotext(p, 42, 8, 8, "m", "");
  const std::string png = encode_png(img, text);
  auto out = server::a1111_png_info({{"image", "data:image/png;base64," + server::base64_encode(png)}});
  EXPECT_EQ(out["info"], text);
  EXPECT_EQ(out["parameters"]["Prompt"], "a cat");
  EXPECT_EQ(out["parameters"]["Seed"], "42");
  EXPECT_EQ(server::a1111_png_info({{"image", ""}})["info"], "");
  EXPECT_NE(error_of([] { server::a1111_png_info({{"image", "***"}}); }).find("'image'"), std::string::npos);
}

}  // namespace
}  // namespace vg
