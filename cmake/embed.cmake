# embed.cmake - cmake -DIN=file -DOUT=file.c -DNAME=symbol -P embed.cmake: the bytes of IN as
# a NUL-terminated C array `const char NAME[]` (the server's page and OpenAPI document).
file(READ "${IN}" hex HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
file(WRITE "${OUT}" "/* generated from ${IN} by cmake/embed.cmake: do not edit */\nconst char ${NAME}[] = {${bytes} 0};\n")
