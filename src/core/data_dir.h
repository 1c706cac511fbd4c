// Where the installed data lives (the demo model, the CLIP vocabulary, the
// web UI page): $VG_DATA_DIR, else <prefix>/share/visiongen found from the
// library's or the program's own location, else the source tree it was
// built from (models/ beside the build folder).
#pragma once
#include <string>

namespace vg {

// "" when no data folder is found.
std::string data_dir();
// The demo model's folder: $VG_DEFAULT_MODEL, else <data_dir>/models/
// visiongen-shapes, else models/visiongen-shapes of the source tree; "" if none.
std::string default_model_path(const std::string& data_dir_override = "");

}  // namespace vg
