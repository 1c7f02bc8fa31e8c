# Turns a text file into a C string: cmake -DIN=file -DOUT=file.c [-DNAME=symbol] -P embed_text.cmake
# Defines `const char NAME[]` (NUL-terminated) and `const size_t NAME_len`; NAME defaults to
# hdlm_schema_sql.
if(NOT DEFINED NAME)
  set(NAME hdlm_schema_sql)
endif()
get_filename_component(base ${IN} NAME)
file(READ ${IN} content HEX)
string(LENGTH "${content}" n)
math(EXPR len "${n} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${content}")
file(WRITE ${OUT} "/* generated from ${base}; do not edit */\n#include <stddef.h>\n")
file(APPEND ${OUT} "const char ${NAME}[] = {${bytes}0x00};\n")
file(APPEND ${OUT} "const size_t ${NAME}_len = ${len};\n")
