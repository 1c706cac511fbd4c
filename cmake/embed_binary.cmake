# Writes any file as a C++ byte array NAME plus NAME_size (run by add_custom_command).
# A byte array, not a string literal: no literal-length limits, and multi-byte
# UTF-8 sequences are never split across pieces.
file(READ ${IN} hex HEX)
string(LENGTH "${hex}" hex_len)
math(EXPR size "${hex_len} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
# Eight bytes per line keeps the generated header readable.
string(REGEX REPLACE "((0x[0-9a-f][0-9a-f],)(0x[0-9a-f][0-9a-f],)(0x[0-9a-f][0-9a-f],)(0x[0-9a-f][0-9a-f],)(0x[0-9a-f][0-9a-f],)(0x[0-9a-f][0-9a-f],)(0x[0-9a-f][0-9a-f],)(0x[0-9a-f][0-9a-f],))" "\\1\n" bytes "${bytes}")
file(WRITE ${OUT} "// Generated from ${IN}; do not edit.\n#pragma once\n#include <cstddef>\nnamespace vg {\ninline constexpr unsigned char ${NAME}[] = {\n${bytes}};\ninline constexpr std::size_t ${NAME}_size = ${size};\n}\n")
