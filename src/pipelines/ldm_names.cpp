#include "pipelines/ldm_names.h"

#include <regex>

namespace vg {

namespace {

std::string resnet_part(const std::string& r, bool vae) {
  static const std::pair<const char*, const char*> kUnet[] = {
      {"norm1", "in_layers.0"}, {"conv1", "in_layers.2"}, {"time_emb_proj", "emb_layers.1"},
      {"norm2", "out_layers.0"}, {"conv2", "out_layers.3"}, {"conv_shortcut", "skip_connection"}};
  size_t dot = r.find('.');
  std::string head = r.substr(0, dot), tail = r.substr(dot);
  if (vae) return (head == "conv_shortcut" ? "nin_shortcut" : head) + tail;
  for (auto& [a, b] : kUnet)
    if (head == a) return b + tail;
  return r;
}

}  // namespace

std::string unet_to_ldm(const std::string& n, int L, const std::vector<bool>& up_has_attn) {
  const std::string P = "model.diffusion_model.";
  static const std::regex down_res(R"(^down_blocks\.(\d+)\.resnets\.(\d+)\.(.*)$)");
  static const std::regex down_attn(R"(^down_blocks\.(\d+)\.attentions\.(\d+)\.(.*)$)");
  static const std::regex down_samp(R"(^down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.*)$)");
  static const std::regex up_res(R"(^up_blocks\.(\d+)\.resnets\.(\d+)\.(.*)$)");
  static const std::regex up_attn(R"(^up_blocks\.(\d+)\.attentions\.(\d+)\.(.*)$)");
  static const std::regex up_samp(R"(^up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.*)$)");
  static const std::regex mid(R"(^mid_block\.(resnets|attentions)\.(\d+)\.(.*)$)");
  std::smatch m;
  auto num = [&](int i) { return std::stoi(m[i].str()); };
  if (n.rfind("time_embedding.linear_1.", 0) == 0) return P + "time_embed.0." + n.substr(24);
  if (n.rfind("time_embedding.linear_2.", 0) == 0) return P + "time_embed.2." + n.substr(24);
  if (n.rfind("conv_in.", 0) == 0) return P + "input_blocks.0.0." + n.substr(8);
  if (n.rfind("conv_norm_out.", 0) == 0) return P + "out.0." + n.substr(14);
  if (n.rfind("conv_out.", 0) == 0) return P + "out.2." + n.substr(9);
  if (std::regex_match(n, m, down_res))
    return P + "input_blocks." + std::to_string(1 + num(1) * (L + 1) + num(2)) + ".0." + resnet_part(m[3], false);
  if (std::regex_match(n, m, down_attn))
    return P + "input_blocks." + std::to_string(1 + num(1) * (L + 1) + num(2)) + ".1." + m[3].str();
  if (std::regex_match(n, m, down_samp))
    return P + "input_blocks." + std::to_string(1 + num(1) * (L + 1) + L) + ".0.op." + m[2].str();
  if (std::regex_match(n, m, up_res))
    return P + "output_blocks." + std::to_string(num(1) * (L + 1) + num(2)) + ".0." + resnet_part(m[3], false);
  if (std::regex_match(n, m, up_attn))
    return P + "output_blocks." + std::to_string(num(1) * (L + 1) + num(2)) + ".1." + m[3].str();
  if (std::regex_match(n, m, up_samp))
    return P + "output_blocks." + std::to_string(num(1) * (L + 1) + L) + (up_has_attn.at(num(1)) ? ".2" : ".1") +
           ".conv." + m[2].str();
  if (std::regex_match(n, m, mid)) {
    int idx = m[1] == "attentions" ? 1 : (num(2) == 0 ? 0 : 2);
    return P + "middle_block." + std::to_string(idx) + "." + (idx == 1 ? m[3].str() : resnet_part(m[3], false));
  }
  return P + n;
}

std::string vae_to_ldm(const std::string& n, int levels) {
  const std::string P = "first_stage_model.";
  static const std::regex enc_res(R"(^encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.(.*)$)");
  static const std::regex enc_samp(R"(^encoder\.down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.*)$)");
  static const std::regex dec_res(R"(^decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(.*)$)");
  static const std::regex dec_samp(R"(^decoder\.up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.*)$)");
  static const std::regex mid_res(R"(^(encoder|decoder)\.mid_block\.resnets\.(\d+)\.(.*)$)");
  static const std::regex mid_attn(R"(^(encoder|decoder)\.mid_block\.attentions\.0\.(group_norm|to_q|to_k|to_v|to_out\.0)\.(.*)$)");
  static const std::regex norm_out(R"(^(encoder|decoder)\.conv_norm_out\.(.*)$)");
  std::smatch m;
  if (std::regex_match(n, m, enc_res))
    return P + "encoder.down." + m[1].str() + ".block." + m[2].str() + "." + resnet_part(m[3], true);
  if (std::regex_match(n, m, enc_samp)) return P + "encoder.down." + m[1].str() + ".downsample.conv." + m[2].str();
  if (std::regex_match(n, m, dec_res))
    return P + "decoder.up." + std::to_string(levels - 1 - std::stoi(m[1])) + ".block." + m[2].str() + "." +
           resnet_part(m[3], true);
  if (std::regex_match(n, m, dec_samp))
    return P + "decoder.up." + std::to_string(levels - 1 - std::stoi(m[1])) + ".upsample.conv." + m[2].str();
  if (std::regex_match(n, m, mid_res))
    return P + m[1].str() + ".mid.block_" + std::to_string(std::stoi(m[2]) + 1) + "." + resnet_part(m[3], true);
  if (std::regex_match(n, m, mid_attn)) {
    std::string part = m[2];
    std::string ldm = part == "group_norm" ? "norm" : part == "to_out.0" ? "proj_out" : part.substr(3);
    return P + m[1].str() + ".mid.attn_1." + ldm + "." + m[3].str();
  }
  if (std::regex_match(n, m, norm_out)) return P + m[1].str() + ".norm_out." + m[2].str();
  return P + n;
}

std::string clip_to_ldm(const std::string& n) { return "cond_stage_model.transformer." + n; }

}  // namespace vg
