#!/usr/bin/env bash
# check-layers.sh SOURCE_DIR BUILD_DIR - the module dependency graph of libmedvlm and the CLI,
# drawn from the calls the compiled objects make (nm: which module defines each symbol, which
# modules use it), checked against the layering of ARCHITECTURE.md: a module calls only the
# modules listed for it below, so every arrow points down. Prints the graph; exits 1 naming
# each call that points elsewhere (module -> module, the symbol and the file that calls it).
set -euo pipefail
src=${1:?usage: check-layers.sh SOURCE_DIR BUILD_DIR}
build=${2:?usage: check-layers.sh SOURCE_DIR BUILD_DIR}

# module: the modules it may call (itself always)
declare -A allowed=(
    [core]=""
    [ops]="core"
    [optim]="core"
    [io]="core"
    [image]="core"
    [eval]="core"
    [text]="core io"
    [model]="core io ops"
    [data]="core io image"
    [peft]="core io ops optim model"
    [adapters]="core io ops optim"
    [task]="core io ops optim image eval text model data adapters"
    [serve]="core io ops optim image eval text model data adapters task peft"
    [dist]="core io ops optim image eval text model data adapters task peft"
    [cli]="core io ops optim image eval text model data peft adapters task serve dist"
)

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
: >"$tmp/def"
: >"$tmp/use"
missing=0
while read -r f; do
    mod=$(echo "$f" | cut -d/ -f2)
    if [ -z "${allowed[$mod]+x}" ]; then
        echo "check-layers: src/$mod/ is not in the layering: add it to tools/check-layers.sh" \
            "and ARCHITECTURE.md" >&2
        exit 1
    fi
    target=medvlm_obj
    # the CLI and the server (src/serve/, linked into the tool) are built in medvlm_cli
    [ "$mod" = cli ] || [ "$mod" = serve ] && target=medvlm_cli
    obj="$build/CMakeFiles/$target.dir/$f.o"
    if [ ! -f "$obj" ] && [ "$mod" = serve ] &&
        grep -q '^MHD_FOUND:INTERNAL=$\|^MHD_FOUND:INTERNAL=0' "$build/CMakeCache.txt" 2>/dev/null; then
        continue # built without libmicrohttpd: there is no server to check
    fi
    if [ ! -f "$obj" ]; then
        echo "check-layers: $obj is missing (build first)" >&2
        missing=1
        continue
    fi
    nm "$obj" | awk -v m="$mod" '$2 ~ /^[TDBRC]$/ {print $3, m}' >>"$tmp/def"
    nm "$obj" | awk -v m="$mod" -v f="$f" '$1 == "U" {print $2, m, f}' >>"$tmp/use"
done < <(cd "$src" && find src -name '*.c' | sort)
[ "$missing" = 0 ] || exit 1

awk 'NR == FNR { def[$1] = $2; next }
     ($1 in def) && def[$1] != $2 { print $2, def[$1], $1, $3 }' "$tmp/def" "$tmp/use" |
    sort -u >"$tmp/edges"

echo "module graph (caller -> callee: calls):"
awk '{ n[$1 " -> " $2]++ } END { for (e in n) printf "  %-22s %d\n", e, n[e] }' "$tmp/edges" | sort
bad=0
while read -r from to sym file; do
    case " ${allowed[$from]} " in
    *" $to "*) ;;
    *)
        echo "check-layers: $from -> $to is not allowed: $file calls $sym" >&2
        bad=1
        ;;
    esac
done <"$tmp/edges"
[ "$bad" = 0 ] && echo "every call points down the layering"
exit "$bad"
