# Writes the UI page as a C++ raw string literal (run by add_custom_command).
file(READ ${IN} html)
file(WRITE ${OUT} "// Generated from src/server/ui/index.html; do not edit.\n#pragma once\nnamespace vg::server {\ninline constexpr const char* kUiHtml = R\"VGUI(${html})VGUI\";\n}\n")
