// LoRA against the sdxl-tiny fixtures' LoRA references (SD1 cases on sd1-tiny).
#include <chrono>
#include <cstring>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>

#include "backend/cpu/ops.h"
#include "core/hash.h"
#include "lora/lora_manager.h"
#include "pipelines/denoise.h"
#include "pipelines/sd_model.h"
#include "sampling/sampler.h"
#include "sampling/torch_rng.h"
#include "test_util.h"
#include "visiongen/visiongen.h"

namespace vg {
namespace {

const char* kPrompt = "a photograph of an astronaut riding a horse";
std::string xl() { return test::fixtures() + "/sdxl-tiny"; }
std::string lora_path(const std::string& name) { return xl() + "/models/lora/" + name + ".safetensors"; }

struct Loaded {
  std::unique_ptr<SdModel> m;
  std::unique_ptr<LoraManager> lm;
};
Loaded load() {
  Loaded l;
  l.m = load_sd_model(test::tiny_model());
  l.lm = std::make_unique<LoraManager>(
      l.m->info.family, std::vector<LoraComponent>{{"unet", l.m->unet_layers, l.m->unet_sgm_name},
                                                   {"text_encoder", l.m->text_encoder_layers, nullptr}});
  l.lm->set_dirs({xl() + "/models/lora"});
  return l;
}

Tensor embeds(SdModel& m, const std::string& prompt = kPrompt) {
  return m.text_encoder->encode({m.tokenizer->encode_padded(prompt)}, 1);
}
// unet(sample_sd1, t=500, embeds) in NCHW
Tensor unet_out(SdModel& m, const Tensor& e) {
  static auto st = SafetensorsFile::open(xl() + "/lora/stages.safetensors");
  return nhwc_to_nchw(m.unet->forward(nchw_to_nhwc(st->load_f32("unet_in.sample_sd1")), {500.0f}, e));
}
double stage_diff(const Tensor& t, const std::string& name) {
  static auto st = SafetensorsFile::open(xl() + "/lora/stages.safetensors");
  Tensor ref = st->load_f32(name);
  EXPECT_EQ(t.numel(), ref.numel()) << name;
  return test::max_abs_diff(t.data(), ref.data(), std::min(t.numel(), ref.numel()));
}
bool bitwise_equal(const Tensor& a, const Tensor& b) {
  return a.numel() == b.numel() && std::memcmp(a.data(), b.data(), a.numel() * sizeof(float)) == 0;
}

TEST(Lora, StagesMatchDiffusers) {
  Loaded l = load();
  struct Case {
    const char* tag;
    std::vector<LoraSpec> specs;
  };
  for (const Case& c : {Case{"base", {}}, Case{"kohya", {{"sd1_kohya_locon", 1.0f}}}, Case{"peft", {{"sd1_peft", 1.0f}}},
                        Case{"stack_0p8_m0p4", {{"sd1_kohya_locon", 0.8f}, {"sd1_peft", -0.4f}}}}) {
    LoraApplied a = l.lm->set(c.specs);
    EXPECT_TRUE(a.warnings.empty()) << c.tag << ": " << (a.warnings.empty() ? "" : a.warnings[0]);
    Tensor e = embeds(*l.m);
    EXPECT_LE(stage_diff(e, std::string("sd1.") + c.tag + ".prompt_embeds"), 1e-4) << c.tag;
    EXPECT_LE(stage_diff(unet_out(*l.m, e), std::string("sd1.") + c.tag + ".unet_out_t500"), 1e-4) << c.tag;
  }
}

TEST(Lora, UnmergeRestoresTheLoadedWeightsBitExactly) {
  Loaded fresh = load(), l = load();
  const Tensor e0 = embeds(*fresh.m), u0 = unet_out(*fresh.m, e0);
  l.lm->set({{"sd1_kohya_locon", 1.0f}, {"sd1_peft", 0.5f}});
  const std::string sig = l.lm->signature();
  EXPECT_FALSE(bitwise_equal(unet_out(*l.m, embeds(*l.m)), u0));  // it did change
  l.lm->set({});
  EXPECT_NE(l.lm->signature(), sig);
  const Tensor e1 = embeds(*l.m);
  EXPECT_TRUE(bitwise_equal(e1, e0));
  EXPECT_TRUE(bitwise_equal(unet_out(*l.m, e1), u0));
  // and every slot's weight is the file's again
  for (auto* reg : {l.m->unet_layers.get(), l.m->text_encoder_layers.get()})
    for (const auto& [name, slot] : reg->slots()) {
      Tensor w, orig;
      slot->materialize(&w, nullptr);
      slot->original(&orig, nullptr);
      ASSERT_TRUE(bitwise_equal(w, orig)) << name;
    }
}

// A whole SD1 pipeline case of lora/<name> (PNDM, CFG 7.5, 64x64, negative "blurry").
void expect_pipeline(const std::string& name, const std::vector<LoraSpec>& specs, const std::string& warning = "") {
  Loaded l = load();
  LoraApplied a = l.lm->set(specs);
  if (warning.empty()) {
    EXPECT_TRUE(a.warnings.empty()) << name;
  } else {
    ASSERT_EQ(a.warnings.size(), 1u) << name;
    EXPECT_NE(a.warnings[0].find(warning), std::string::npos) << a.warnings[0];
  }
  SdModel& m = *l.m;
  auto ref = SafetensorsFile::open(xl() + "/lora/" + name + ".safetensors");
  auto s = make_sampler("PNDMScheduler", m.scheduler);
  s->set_timesteps(4);
  Tensor cond = embeds(m), uncond = embeds(m, "blurry");
  Tensor lat = nchw_to_nhwc(ref->load_f32("randn_draw0"));
  scale_inplace(lat, s->init_noise_sigma());
  TorchCpuGenerator rng(0);  // PNDM draws nothing
  DenoiseHooks hooks;
  Tensor fin = denoise(*m.unet, *s, cond, uncond, lat, 7.5f, rng, hooks);
  Tensor dec = fin.clone();
  scale_inplace(dec, 1.0f / m.vae->config().scaling_factor);
  Tensor img = nhwc_to_nchw(m.vae->decode(dec));
  for (int64_t i = 0; i < img.numel(); ++i) img.data()[i] = std::clamp(img.data()[i] / 2 + 0.5f, 0.0f, 1.0f);
  const double lat_err = test::rel_err(nhwc_to_nchw(fin), ref->load_f32("latents_final"));
  const double px = test::frac_within(img, ref->load_f32("image"), 1.0 / 255);
  std::printf("[lora] %s: latents rel %.2e, image within 1/255 %.4f\n", name.c_str(), lat_err, px);
  EXPECT_LE(lat_err, 1e-3) << name;
  EXPECT_GE(px, 0.99) << name;
}

TEST(Lora, KohyaLoconPipeline) { expect_pipeline("sd1_kohya_locon", {{"sd1_kohya_locon", 1.0f}}); }
TEST(Lora, PeftPipeline) { expect_pipeline("sd1_peft", {{"sd1_peft", 1.0f}}); }
TEST(Lora, StackPipeline) {
  expect_pipeline("sd1_stack_kohya0p8_peftm0p4", {{"sd1_kohya_locon", 0.8f}, {"sd1_peft", -0.4f}});
}
TEST(Lora, UnetOnlyPipeline) { expect_pipeline("sd1_kohya_unet_only", {{"sd1_kohya_unet_only", 1.0f}}); }
TEST(Lora, ExtraKeysWarnAndApplyTheRest) {
  expect_pipeline("sd1_kohya_extra_keys", {{"sd1_kohya_extra_keys", 1.0f}},
                  "lora_unet_down_blocks_3_attentions_0_transformer_blocks_0_attn1_to_q");
}
TEST(Lora, ScaleIsTheWeight) {
  expect_pipeline("sd1_kohya_scale0p6_cross_attention_kwargs", {{"sd1_kohya_locon", 0.6f}});
  expect_pipeline("sd1_kohya_fused0p6", {{"sd1_kohya_locon", 0.6f}});
}

Error error_of(LoraManager& lm, const std::vector<LoraSpec>& specs) {
  try {
    lm.set(specs);
  } catch (const VgException& e) {
    return e.to_error();
  }
  return Error{ErrorCode::kOk, ""};
}
std::string temp_dir() {
  const std::string d = testing::TempDir() + "/lora_test";
  std::filesystem::create_directories(d);
  return d;
}

TEST(Lora, ErrorsNameTheProblemAndChangeNothing) {
  Loaded l = load();
  const Tensor e0 = embeds(*l.m), u0 = unet_out(*l.m, e0);
  Error e = error_of(*l.lm, {{"sdxl_peft", 1.0f}});
  EXPECT_EQ(e.code, ErrorCode::kLoraIncompatible) << e.message;
  EXPECT_NE(e.message.find("SDXL"), std::string::npos) << e.message;

  // one factor of one layer with a wrong width
  auto src = SafetensorsFile::open(lora_path("sd1_kohya_locon"));
  std::vector<Tensor> keep;
  std::vector<TensorToWrite> out;
  const std::string bad = "lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn2_to_k.lora_down.weight";
  for (const auto& [name, info] : src->tensors()) {
    Tensor t = src->load_f32(name);
    if (name == bad) t = Tensor::zeros({t.dim(0), t.dim(1) + 8});
    keep.push_back(t);
    out.push_back({name, DType::kF32, keep.back().shape(), keep.back().data()});
  }
  const std::string dir = temp_dir();
  write_safetensors(dir + "/wrong_shape.safetensors", out);
  e = error_of(*l.lm, {{"sd1_peft", 1.0f}, {dir + "/wrong_shape.safetensors", 1.0f}});
  EXPECT_EQ(e.code, ErrorCode::kLoraIncompatible) << e.message;
  EXPECT_NE(e.message.find("down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k"), std::string::npos) << e.message;
  auto slot = l.m->unet_layers->find("down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k");
  ASSERT_TRUE(slot);
  EXPECT_NE(e.message.find(shape_str(slot->shape)), std::string::npos) << e.message;

  {  // truncated
    std::ifstream in(lora_path("sd1_peft"), std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), {});
    std::ofstream(dir + "/cut.safetensors", std::ios::binary) << bytes.substr(0, bytes.size() / 2);
  }
  e = error_of(*l.lm, {{dir + "/cut.safetensors", 1.0f}});
  EXPECT_EQ(e.code, ErrorCode::kCorruptFile) << e.message;

  e = error_of(*l.lm, {{"no_such_lora", 1.0f}});
  EXPECT_EQ(e.code, ErrorCode::kLoraNotFound) << e.message;
  EXPECT_NE(e.message.find("no_such_lora"), std::string::npos) << e.message;

  std::ofstream(dir + "/old.ckpt") << "not really a pickle";
  e = error_of(*l.lm, {{dir + "/old.ckpt", 1.0f}});
  EXPECT_EQ(e.code, ErrorCode::kUnsupportedFormat) << e.message;
  EXPECT_NE(e.message.find("pickle"), std::string::npos) << e.message;

  // nothing was merged by any of them
  EXPECT_EQ(l.lm->signature(), "");
  EXPECT_TRUE(bitwise_equal(embeds(*l.m), e0));
  EXPECT_TRUE(bitwise_equal(unet_out(*l.m, e0), u0));
}

TEST(Lora, ParsesListsAndPromptTags) {
  auto v = parse_lora_list("a:0.8, b:-0.4,dir/x.safetensors");
  ASSERT_EQ(v.size(), 3u);
  EXPECT_EQ(v[0].name, "a");
  EXPECT_FLOAT_EQ(v[0].weight, 0.8f);
  EXPECT_FLOAT_EQ(v[1].weight, -0.4f);
  EXPECT_EQ(v[2].name, "dir/x.safetensors");
  EXPECT_FLOAT_EQ(v[2].weight, 1.0f);
  std::vector<LoraSpec> tags;
  EXPECT_EQ(extract_prompt_loras("a cat <lora:style:0.7>, night<lora:detail>", &tags), "a cat , night");
  ASSERT_EQ(tags.size(), 2u);
  EXPECT_EQ(tags[0].name, "style");
  EXPECT_FLOAT_EQ(tags[0].weight, 0.7f);
  EXPECT_EQ(tags[1].name, "detail");
  EXPECT_FLOAT_EQ(tags[1].weight, 1.0f);
}

TEST(Lora, HashIsTheA1111ShortHash) {
  // sha256 of the tensor data after the header, first 12 hex
  auto f = load_lora_file(lora_path("sd1_peft"));
  std::ifstream in(lora_path("sd1_peft"), std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), {});
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  EXPECT_EQ(f->hash(), sha256_hex(std::string_view(bytes).substr(8 + n)).substr(0, 12));
}

TEST(Lora, EngineAppliesFlagsAndPromptTagsAndUnmerges) {
  LoadOptions lo;
  lo.lora_dirs = {xl() + "/models/lora"};
  auto eng = Engine::load(test::tiny_model(), lo);
  ASSERT_TRUE(eng) << eng.error().to_string();
  GenerateParams p;
  p.prompt = kPrompt;
  p.steps = 2;
  p.width = p.height = 64;
  p.seed = 7;
  auto base = (*eng)->generate(p);
  ASSERT_TRUE(base) << base.error().to_string();
  GenerateParams pl = p;
  pl.loras = "sd1_peft:0.5";
  pl.prompt = std::string(kPrompt) + " <lora:sd1_kohya_locon:0.8>";
  auto with = (*eng)->generate(pl);
  ASSERT_TRUE(with) << with.error().to_string();
  EXPECT_NE(with->images[0].pixels, base->images[0].pixels);
  const std::string info = with->infotext[0];
  EXPECT_NE(info.find("Lora hashes: \"sd1_peft: " + load_lora_file(lora_path("sd1_peft"))->hash() + ", sd1_kohya_locon: " +
                      load_lora_file(lora_path("sd1_kohya_locon"))->hash() + "\""),
            std::string::npos) << info;
  EXPECT_NE(info.find("<lora:sd1_kohya_locon:0.8>"), std::string::npos) << info;  // the prompt as written
  auto again = (*eng)->generate(p);  // no LoRA: the loaded weights again
  ASSERT_TRUE(again);
  EXPECT_EQ(again->images[0].pixels, base->images[0].pixels);
  EXPECT_EQ(again->infotext[0].find("Lora hashes"), std::string::npos);
  pl.loras = "missing_one";
  auto bad = (*eng)->generate(pl);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, ErrorCode::kLoraNotFound);
}

// --lora-mode runtime: the weights stay as loaded, each layer adds its update
// to its output (PEFT's unfused adapters). Same results as merging (1e-5),
// same as diffusers; switching back to nothing leaves the loaded bits.
TEST(Lora, RuntimeModeMatchesMergedAndDiffusers) {
  Loaded merged = load(), rt = load();
  rt.lm->set_runtime(true);
  const Tensor e0 = embeds(*rt.m), u0 = unet_out(*rt.m, e0);
  struct Case {
    const char* tag;
    std::vector<LoraSpec> specs;
  };
  for (const Case& c : {Case{"kohya", {{"sd1_kohya_locon", 1.0f}}}, Case{"peft", {{"sd1_peft", 1.0f}}},
                        Case{"stack_0p8_m0p4", {{"sd1_kohya_locon", 0.8f}, {"sd1_peft", -0.4f}}}}) {
    merged.lm->set(c.specs);
    rt.lm->set(c.specs);
    size_t runtime_slots = 0;
    for (const auto& [name, slot] : rt.m->unet_layers->slots()) runtime_slots += slot->runtime();
    EXPECT_GT(runtime_slots, 0u) << c.tag;
    const Tensor em = embeds(*merged.m), er = embeds(*rt.m);
    const Tensor um = unet_out(*merged.m, em), ur = unet_out(*rt.m, er);
    std::printf("[lora] runtime vs merged %s: embeds %.2e, unet %.2e rel\n", c.tag, test::rel_err(er, em), test::rel_err(ur, um));
    EXPECT_LE(test::rel_err(er, em), 1e-5) << c.tag;
    EXPECT_LE(test::rel_err(ur, um), 1e-5) << c.tag;
    EXPECT_LE(stage_diff(er, std::string("sd1.") + c.tag + ".prompt_embeds"), 1e-4) << c.tag;
    EXPECT_LE(stage_diff(ur, std::string("sd1.") + c.tag + ".unet_out_t500"), 1e-4) << c.tag;
  }
  rt.lm->set({});
  const Tensor e1 = embeds(*rt.m);
  EXPECT_TRUE(bitwise_equal(e1, e0));
  EXPECT_TRUE(bitwise_equal(unet_out(*rt.m, e1), u0));
  // merged -> runtime -> merged on one model: each switch rebuilds from the loaded weights
  merged.lm->set({{"sd1_kohya_locon", 1.0f}});
  const Tensor um = unet_out(*merged.m, embeds(*merged.m));
  merged.lm->set_runtime(true);
  merged.lm->set({{"sd1_kohya_locon", 1.0f}});
  EXPECT_LE(test::rel_err(unet_out(*merged.m, embeds(*merged.m)), um), 1e-5);
  merged.lm->set_runtime(false);
  merged.lm->set({{"sd1_kohya_locon", 1.0f}});
  EXPECT_TRUE(bitwise_equal(unet_out(*merged.m, embeds(*merged.m)), um));
}

// LyCORIS LoHa and LoKr (no diffusers reference: diffusers cannot load
// them): each layer's merged weight is W + scale * delta with delta written
// out here from LyCORIS' definitions, and run time gives the same output.
TEST(Lora, LohaAndLokrFollowLycorisDefinitions) {
  Loaded l = load();
  const std::string lin = "down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q";  // [64, 64]
  const std::string lin2 = "down_blocks.1.attentions.0.transformer_blocks.0.ff.net.2";   // [64, 256]
  const std::string conv = "down_blocks.1.resnets.0.conv1";                               // [64, 32, 3, 3]
  auto slot = [&](const std::string& n) { return l.m->unet_layers->find(n); };
  ASSERT_TRUE(slot(lin) && slot(lin2) && slot(conv));
  const Shape sq = slot(lin)->shape, s2 = slot(lin2)->shape, sc = slot(conv)->shape;
  std::vector<Tensor> keep;
  std::vector<TensorToWrite> out;
  uint32_t x = 777;
  auto add = [&](const std::string& k, Shape s) -> Tensor {
    Tensor t(s);
    for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] = (static_cast<float>((x = x * 1664525u + 1013904223u) >> 8) / 16777216.0f - 0.5f) * 0.3f;
    keep.push_back(t);
    out.push_back({k, DType::kF32, s, keep.back().data()});
    return t;
  };
  auto under = [](std::string s) {
    for (char& c : s) c = c == '.' ? '_' : c;
    return "lora_unet_" + s;
  };
  const float alpha = 2.0f;
  const int64_t r = 4;
  // LoHa on the linear: (w1a @ w1b) * (w2a @ w2b), times alpha / r
  const std::string kq = under(lin);
  Tensor w1a = add(kq + ".hada_w1_a", {sq[0], r}), w1b = add(kq + ".hada_w1_b", {r, sq[1]});
  Tensor w2a = add(kq + ".hada_w2_a", {sq[0], r}), w2b = add(kq + ".hada_w2_b", {r, sq[1]});
  Tensor aq = Tensor::from({1}, &alpha).clone();
  keep.push_back(aq);
  out.push_back({kq + ".alpha", DType::kF32, {}, keep.back().data()});
  // LoKr on ff.net.2: kron(w1 [4, 8], w2 [16, 32]) (full factors: no alpha scaling)
  const std::string k2 = under(lin2);
  Tensor kw1 = add(k2 + ".lokr_w1", {4, 8}), kw2 = add(k2 + ".lokr_w2", {s2[0] / 4, s2[1] / 8});
  // LoHa on the conv (plain factors with the kernel in the b factor)
  const std::string kc = under(conv);
  Tensor c1a = add(kc + ".hada_w1_a", {sc[0], r}), c1b = add(kc + ".hada_w1_b", {r, sc[1] * 9});
  Tensor c2a = add(kc + ".hada_w2_a", {sc[0], r}), c2b = add(kc + ".hada_w2_b", {r, sc[1] * 9});
  const std::string path = temp_dir() + "/lycoris.safetensors";
  write_safetensors(path, out);

  auto mm = [](const Tensor& a, const Tensor& b, int64_t i, int64_t j) {
    double s = 0;
    for (int64_t k = 0; k < a.dim(1); ++k) s += static_cast<double>(a.data()[i * a.dim(1) + k]) * b.data()[k * b.dim(1) + j];
    return s;
  };
  auto check = [&](const std::string& name, const std::function<double(int64_t, int64_t)>& delta) {
    Tensor w, orig;
    slot(name)->materialize(&w, nullptr);
    slot(name)->original(&orig, nullptr);
    const int64_t rows = w.dim(0), cols = w.numel() / rows;
    double worst = 0;
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < cols; ++j)
        worst = std::max(worst, std::abs(w.data()[i * cols + j] - orig.data()[i * cols + j] - delta(i, j)));
    EXPECT_LE(worst, 1e-5) << name;
  };
  for (float weight : {1.0f, -0.5f}) {
    l.lm->set({{path, weight}});
    check(lin, [&](int64_t i, int64_t j) { return weight * alpha / r * mm(w1a, w1b, i, j) * mm(w2a, w2b, i, j); });
    check(lin2, [&](int64_t i, int64_t j) {
      const int64_t c = kw2.dim(0), d = kw2.dim(1);
      return weight * static_cast<double>(kw1.data()[(i / c) * 8 + j / d]) * kw2.data()[(i % c) * d + j % d];
    });
    check(conv, [&](int64_t i, int64_t j) { return weight * mm(c1a, c1b, i, j) * mm(c2a, c2b, i, j); });  // no alpha
  }
  const Tensor um = unet_out(*l.m, embeds(*l.m));
  Loaded rt = load();
  rt.lm->set_runtime(true);
  rt.lm->set({{path, -0.5f}});
  EXPECT_LE(test::rel_err(unet_out(*rt.m, embeds(*rt.m)), um), 1e-5);
}

TEST(Lora, MergeTimeOfARank32AttentionLora) {
  Loaded l = load();
  std::vector<Tensor> keep;
  std::vector<TensorToWrite> out;
  uint32_t x = 12345;
  auto fill = [&](Shape s) {
    Tensor t(s);
    for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] = static_cast<float>((x = x * 1664525u + 1013904223u) >> 8) * 1e-9f;
    keep.push_back(t);
    return keep.back();
  };
  int layers = 0;
  for (const auto& [name, slot] : l.m->unet_layers->slots()) {
    if (name.find(".attn") == std::string::npos) continue;
    std::string k = name;
    for (char& c : k) c = c == '.' ? '_' : c;
    k = "lora_unet_" + k;
    Tensor d = fill({32, slot->shape[1]}), u = fill({slot->shape[0], 32});
    out.push_back({k + ".lora_down.weight", DType::kF32, d.shape(), d.data()});
    out.push_back({k + ".lora_up.weight", DType::kF32, u.shape(), u.data()});
    ++layers;
  }
  const std::string p = temp_dir() + "/rank32.safetensors";
  write_safetensors(p, out);
  auto t0 = std::chrono::steady_clock::now();
  l.lm->set({{p, 1.0f}});
  for (const auto& [name, slot] : l.m->unet_layers->slots())
    if (slot->patched()) {
      Tensor w;
      slot->materialize(&w, nullptr);
    }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("[lora] rank-32 LoRA on %d attention linears: load + merge %.3f s\n", layers, s);
  EXPECT_GT(layers, 0);
}

}  // namespace
}  // namespace vg
