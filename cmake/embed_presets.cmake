# Writes every data/presets/*.yaml into a header as (name, text) pairs.
file(GLOB files ${DIR}/*.yaml)
set(body "")
foreach(f ${files})
  get_filename_component(name ${f} NAME)
  file(READ ${f} text)
  string(APPEND body "      {\"${name}\", R\"VGYAML(${text})VGYAML\"},\n")
endforeach()
file(WRITE ${OUT} "// Generated from data/presets; do not edit.\n#pragma once\n#include <utility>\n#include <vector>\nnamespace vg {\ninline const std::vector<std::pair<const char*, const char*>>& builtin_presets() {\n  static const std::vector<std::pair<const char*, const char*>> k = {\n${body}  };\n  return k;\n}\n}\n")
