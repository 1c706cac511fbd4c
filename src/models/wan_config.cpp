// WanTransformerConfig: from diffusers' transformer/config.json or from the original weights.
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "models/config_util.h"
#include "models/wan.h"

namespace vg {

namespace {

[[noreturn]] void refuse_image_encoder(const std::string& source, const std::string& what) {
  fail(ErrorCode::kUnsupportedModel,
       "'" + source + "' is a Wan model with a CLIP image encoder input (" + what +
           ": Wan 2.1 I2V / FLF2V); visiongen runs the text-to-video and TI2V Wan "
           "transformers (Wan 2.1 T2V, Wan 2.2 TI2V-5B)");
}

}  // namespace

std::vector<int64_t> WanTransformerConfig::rope_axes() const {
  const int64_t hw = 2 * (attention_head_dim / 6);
  return {attention_head_dim - 2 * hw, hw, hw};
}

WanTransformerConfig WanTransformerConfig::from_json_file(const std::string& path) {
  return from_json(read_json_file(path, "Wan transformer"), path);
}

WanTransformerConfig WanTransformerConfig::from_json(const nlohmann::json& j, const std::string& path) {
  WanTransformerConfig c;
  try {
    for (const char* key : {"image_dim", "added_kv_proj_dim", "pos_embed_seq_len"})
      if (j.contains(key) && !j[key].is_null()) refuse_image_encoder(path, key);
    c.patch_size = int_or_list(j, "patch_size", 3, 0);
    if (!j.contains("patch_size") || j["patch_size"].is_null()) c.patch_size = {1, 2, 2};
    c.num_attention_heads = j.value("num_attention_heads", c.num_attention_heads);
    c.attention_head_dim = j.value("attention_head_dim", c.attention_head_dim);
    c.in_channels = j.value("in_channels", c.in_channels);
    c.out_channels = j.contains("out_channels") && !j["out_channels"].is_null()
                         ? j["out_channels"].get<int64_t>()
                         : c.in_channels;
    c.text_dim = j.value("text_dim", c.text_dim);
    c.freq_dim = j.value("freq_dim", c.freq_dim);
    c.ffn_dim = j.value("ffn_dim", c.ffn_dim);
    c.num_layers = j.value("num_layers", c.num_layers);
    c.cross_attn_norm = j.value("cross_attn_norm", c.cross_attn_norm);
    c.eps = j.value("eps", c.eps);
    c.rope_max_seq_len = j.value("rope_max_seq_len", c.rope_max_seq_len);
    if (j.contains("qk_norm")) {
      const auto& q = j["qk_norm"];
      if (q.is_null() || (q.is_boolean() && !q.get<bool>())) {
        c.qk_norm = false;
      } else if (q.is_string() && q.get<std::string>() == "rms_norm_across_heads") {
        c.qk_norm = true;
      } else {
        fail(ErrorCode::kUnsupportedModel, "'" + path + "': qk_norm " + q.dump() +
                                               " is not supported; Wan models use \"rms_norm_across_heads\"");
      }
    }
  } catch (const nlohmann::json::exception& e) {
    fail(ErrorCode::kCorruptFile, "'" + path + "' has a field of the wrong type: " + e.what());
  }
  c.validate(path);
  return c;
}

void WanTransformerConfig::validate(const std::string& source) const {
  auto bad = [&](const std::string& what) {
    fail(ErrorCode::kCorruptFile, source + ": " + what + "; the Wan transformer config is inconsistent");
  };
  if (num_attention_heads <= 0 || attention_head_dim <= 0 || in_channels <= 0 || out_channels <= 0 ||
      text_dim <= 0 || freq_dim <= 0 || ffn_dim <= 0 || num_layers < 0 || !(eps > 0) || rope_max_seq_len <= 0)
    bad("a size is not positive");
  if (patch_size.size() != 3 || patch_size[0] <= 0 || patch_size[1] <= 0 || patch_size[2] <= 0)
    bad("patch_size must be three positive sizes (t, h, w)");
  if (freq_dim % 2) bad("freq_dim must be even");
  if (attention_head_dim % 2 || attention_head_dim < 6)
    bad("attention_head_dim must be even and at least 6 (three RoPE axes)");
}

WanTransformerConfig WanTransformerConfig::from_weights(const WeightStore& w, int64_t head_dim_hint) {
  if (w.find("img_emb.proj.1.weight") || w.find("blocks.0.cross_attn.k_img.weight"))
    refuse_image_encoder("Wan weights " + w.describe(), "img_emb / cross_attn.k_img");
  WanTransformerConfig c;
  const std::string what = "Wan";
  const Shape& pe = weight_shape(w, "patch_embedding.weight", 5, what);
  const int64_t dim = pe[0];
  c.in_channels = pe[1];
  c.patch_size = {pe[2], pe[3], pe[4]};
  c.text_dim = weight_shape(w, "text_embedding.0.weight", 2, what)[1];
  c.freq_dim = weight_shape(w, "time_embedding.0.weight", 2, what)[1];
  c.num_layers = count_blocks(w, "blocks.", ".self_attn.q.weight");
  if (c.num_layers == 0)
    fail(ErrorCode::kCorruptFile,
         "Wan weights " + w.describe() + " have no blocks.0.self_attn.q; not a Wan transformer");
  c.ffn_dim = weight_shape(w, "blocks.0.ffn.0.weight", 2, what)[0];
  const int64_t out_rows = weight_shape(w, "head.head.weight", 2, what)[0], pv = pe[2] * pe[3] * pe[4];
  if (pv <= 0 || out_rows % pv)
    fail(ErrorCode::kCorruptFile, "Wan weights: head.head has " + std::to_string(out_rows) +
                                      " rows, not a multiple of the patch volume; the file is damaged");
  c.out_channels = out_rows / pv;
  c.qk_norm = w.find("blocks.0.self_attn.norm_q.weight") != nullptr;
  c.cross_attn_norm = w.find("blocks.0.norm3.weight") != nullptr;
  const int64_t hd = head_dim_hint > 0 ? head_dim_hint : dim % 128 == 0 ? 128 : dim / 2;
  if (hd <= 0 || dim % hd)
    fail(ErrorCode::kCorruptFile, "Wan weights: width " + std::to_string(dim) +
                                      " is not a multiple of the head dim " + std::to_string(hd));
  c.attention_head_dim = hd;
  c.num_attention_heads = dim / hd;
  c.validate("Wan weights " + w.describe());
  return c;
}

}  // namespace vg
