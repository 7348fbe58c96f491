#!/usr/bin/env bash
# `cmake --install` puts the library, the header, the CLI and medvlm.pc in place, and a C
# program builds against them with pkg-config and runs.
set -u
bin=${MEDVLM_BINARY_DIR:?run through ctest}
golden=${MEDVLM_GOLDEN:-${MEDVLM_GOLDEN_DEFAULT:-}}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
pass=0 fail=0
check() { if [ "$2" = 0 ]; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL $1" >&2; fi; }
cmake --install "$bin" --prefix "$work/prefix" >/dev/null; check "cmake --install" $?
for f in include/medvlm.h lib/libmedvlm.a lib/pkgconfig/medvlm.pc bin/medvlm; do
  [ -e "$work/prefix/$f" ]; check "installed $f" $?
done
ls "$work"/prefix/lib/libmedvlm.so* >/dev/null 2>&1; check "installed the shared library" $?
cat > "$work/prog.c" <<'C'
#include <medvlm.h>
#include <stdio.h>
int main(int argc, char **argv)
{
    struct medvlm_model *m;
    if (argc < 2 || medvlm_model_load(argv[1], MEDVLM_LOAD_ALL, &m) != MEDVLM_OK) {
        fprintf(stderr, "medvlm: %s\n", medvlm_last_error());
        return 1;
    }
    printf("vision layers %d\n", medvlm_model_config(m)->vision.num_hidden_layers);
    medvlm_model_free(m);
    return 0;
}
C
export PKG_CONFIG_PATH="$work/prefix/lib/pkgconfig"
san=; [ "${MEDVLM_SANITIZE:-OFF}" = ON ] && san=-fsanitize=address,undefined # as the library was built
cc $san "$work/prog.c" -o "$work/prog" $(pkg-config --cflags --libs medvlm) -Wl,-rpath,"$work/prefix/lib"
check "a program builds with pkg-config" $?
"$work/prog" "$golden/model" > "$work/out.txt"; check "it runs" $?
grep -Eq '^vision layers [0-9]+$' "$work/out.txt"; check "it printed the model's layers" $?
"$work/prog" /nonexistent 2> "$work/err.txt"; [ $? = 1 ] && grep -q "/nonexistent" "$work/err.txt"
check "its errors come through medvlm_last_error" $?
"$work/prefix/bin/medvlm" --version | grep -q '^medvlm '; check "installed CLI runs" $?
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
