// The A1111-style `name.yaml` beside `name.safetensors`: the original LDM
// config, of which visiongen reads what the weights do not reveal.
#pragma once
#include <string>

namespace vg {

struct A1111YamlHints {
  std::string parameterization;  // "v" for v-prediction checkpoints; "" = not given
  int num_heads = -1, num_head_channels = -1;
};

// Parses the YAML text (`name` for messages); corrupt_file when it is not
// valid YAML or a field has the wrong type.
A1111YamlHints parse_a1111_yaml(const std::string& text, const std::string& name);
// <dir>/<stem>.yaml beside the checkpoint, if there is one (else no hints).
A1111YamlHints read_a1111_yaml(const std::string& ckpt);

}  // namespace vg
