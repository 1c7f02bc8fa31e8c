# Turns a text file into a C string: cmake -DIN=file -DOUT=file.c -P embed_text.cmake
file(READ ${IN} content HEX)
string(LENGTH "${content}" n)
math(EXPR len "${n} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${content}")
file(WRITE ${OUT} "/* generated from schema.sql; do not edit */\n#include <stddef.h>\n")
file(APPEND ${OUT} "const char hdlm_schema_sql[] = {${bytes}0x00};\n")
file(APPEND ${OUT} "const size_t hdlm_schema_sql_len = ${len};\n")
