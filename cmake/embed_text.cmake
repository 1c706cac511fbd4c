# Writes a text file as a C++ string constant NAME (run by add_custom_command).
# Split into 16 KB raw-string pieces: compilers limit one literal's length.
file(READ ${IN} text)
string(LENGTH "${text}" len)
set(body "")
set(pos 0)
while(pos LESS len)
  string(SUBSTRING "${text}" ${pos} 16000 piece)
  string(APPEND body "R\"VGTXT(${piece})VGTXT\"\n")
  math(EXPR pos "${pos} + 16000")
endwhile()
file(WRITE ${OUT} "// Generated from ${IN}; do not edit.\n#pragma once\nnamespace vg {\ninline constexpr const char* ${NAME} =\n${body};\n}\n")
