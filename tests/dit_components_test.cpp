// The DiT component loader: FLUX's and SD3's 16-channel VAEs (no quant
// convs, scale + shift) vs diffusers from the folders, BFL's ae.safetensors
// and the SD3.5 single file; T5 from a llama.cpp-named GGUF (city96's
// t5-v1_1-xxl-encoder files) equal to the folder's.
#include <filesystem>

#include "backend/cpu/ops.h"
#include "io/gguf_writer.h"
#include "text/t5_tokenizer.h"
#include "pipelines/dit_components.h"
#include "test_util.h"

namespace vg {
namespace {

void check_vae(const AutoencoderKL& vae, const std::string& ref_path) {
  auto ref = SafetensorsFile::open(ref_path);
  const VaeConfig& c = vae.config();
  EXPECT_FALSE(c.use_quant_conv);
  // decode: latent / scale + shift
  Tensor z = nchw_to_nhwc(ref->load_f32("decode.latent"));
  for (int64_t i = 0; i < z.numel(); ++i) z.data()[i] = z.data()[i] / c.scaling_factor + c.shift_factor;
  EXPECT_LE(test::rel_err(nhwc_to_nchw(vae.decode(z)), ref->load_f32("decode.image")), 1e-4);
  // encode: moments without quant_conv, then (sample - shift) * scale
  const Posterior post = vae.encode(nchw_to_nhwc(ref->load_f32("encode.image")));
  EXPECT_LE(test::rel_err(nhwc_to_nchw(post.mean), ref->load_f32("encode.mean")), 1e-4);
  EXPECT_LE(test::rel_err(nhwc_to_nchw(post.logvar), ref->load_f32("encode.logvar")), 1e-4);
  const Tensor eps = nchw_to_nhwc(ref->load_f32("encode.eps"));
  Tensor x0(post.mean.shape());
  for (int64_t i = 0; i < x0.numel(); ++i)
    x0.data()[i] = (post.mean.data()[i] + post.std.data()[i] * eps.data()[i] - c.shift_factor) * c.scaling_factor;
  EXPECT_LE(test::rel_err(nhwc_to_nchw(x0), ref->load_f32("encode.sample_shifted_scaled")), 1e-4);
}

TEST(DitVae, FluxFolderAndBflFileMatchDiffusers) {
  const std::string root = test::fixtures() + "/flux-tiny";
  const std::string folder = root + "/models/flux-tiny-dev/vae";
  check_vae(*load_vae_component({folder, "", ""}, false, VaeConfig{}), root + "/vae/vae.safetensors");
  // BFL's layout; the groups/scale/shift a file cannot tell come from the config folder
  check_vae(*load_vae_component({root + "/models/ae-tiny.safetensors", "", folder}, false, VaeConfig{}),
            root + "/vae/vae.safetensors");
}

TEST(DitVae, Sd3FolderAndSingleFileMatchDiffusers) {
  const std::string root = test::fixtures() + "/sd3-tiny";
  const std::string folder = root + "/models/sd3-tiny/vae";
  check_vae(*load_vae_component({folder, "", ""}, false, VaeConfig{}), root + "/vae/vae.safetensors");
  check_vae(*load_vae_component({root + "/models/sd3.5-tiny-medium.safetensors", "first_stage_model.", folder}, false, VaeConfig{}),
            root + "/vae/vae.safetensors");
}


TEST(DitComponents, T5FromLlamaCppGgufEqualsTheFolder) {
  const std::string te = test::fixtures() + "/flux-tiny/models/flux-tiny-dev/text_encoder_2";
  auto src = SafetensorsFile::open(te + "/model.safetensors");
  static const std::map<std::string, std::string> kParts = {
      {"SelfAttention.q", "attn_q"}, {"SelfAttention.k", "attn_k"}, {"SelfAttention.v", "attn_v"},
      {"SelfAttention.o", "attn_o"}, {"SelfAttention.relative_attention_bias", "attn_rel_b"},
      {"DenseReluDense.wi_0", "ffn_gate"}, {"DenseReluDense.wi_1", "ffn_up"}, {"DenseReluDense.wo", "ffn_down"}};
  std::vector<GgufTensorToWrite> out;
  std::vector<Tensor> keep;
  keep.reserve(src->tensors().size());  // the fill callbacks point into it
  for (const auto& [name, info] : src->tensors()) {
    std::string g = name;  // written the way llama.cpp's convert_hf_to_gguf names T5 encoders
    std::smatch m;
    if (name == "shared.weight") g = "token_embd.weight";
    else if (name == "encoder.final_layer_norm.weight") g = "enc.output_norm.weight";
    else if (std::regex_match(name, m, std::regex(R"(encoder\.block\.(\d+)\.layer\.(\d)\.(.+)\.weight)"))) {
      const std::string part = m[3].str();
      g = "enc.blk." + m[1].str() + "." + (part == "layer_norm" ? (m[2] == "0" ? "attn_norm" : "ffn_norm") : kParts.at(part)) + ".weight";
    }
    keep.push_back(src->load_f32(name));
    const Tensor& t = keep.back();
    std::vector<int64_t> ne(info.shape.rbegin(), info.shape.rend());
    out.push_back({g, 0, ne, [&t](uint8_t* dst) { std::memcpy(dst, t.data(), t.numel() * 4); }});
  }
  const std::string dir = ::testing::TempDir() + "/t5_gguf";
  std::filesystem::create_directories(dir);
  write_gguf(dir + "/t5-tiny-f32.gguf", {{"general.architecture", gguf_string("t5encoder")}}, out);
  auto from_gguf = load_t5_component({dir + "/t5-tiny-f32.gguf", "", ""}, false, "t5");  // config from the shapes
  auto from_folder = load_t5_component({te, "", ""}, false, "t5");
  EXPECT_EQ(from_gguf->config().num_layers, from_folder->config().num_layers);
  EXPECT_EQ(from_gguf->config().d_model, from_folder->config().d_model);
  const auto tok = T5Tokenizer::from_dir(test::fixtures() + "/flux-tiny/models/flux-tiny-dev/tokenizer_2");
  const std::vector<std::vector<int32_t>> ids{tok.encode_padded("a red fox in the snow", 32)};
  EXPECT_LE(test::rel_err(from_gguf->encode(ids), from_folder->encode(ids)), 1e-6);
}

}  // namespace
}  // namespace vg
