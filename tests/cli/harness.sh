# harness.sh - sourced by the CLI tests that drive medvlm and check its exit code and output:
#   check NAME STATUS          count a check (STATUS 0 = passed), name the failures on stderr
#   run NAME WANT_RC ARGS...   run "$cli" ARGS with stdout in $out and stderr in $err; the exit
#                              code must be WANT_RC (both streams shown when it is not)
#   has / hasnt NAME TEXT FILE FILE contains / lacks TEXT
# $tmp is a fresh folder, removed on exit. The caller sets cli and prints "$pass passed, ...".
pass=0 fail=0
check() { # check NAME STATUS
  if [ "$2" = 0 ]; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL $1" >&2; fi
}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
out=$tmp/out err=$tmp/err
run() { # run NAME WANT_RC ARGS...
  local name=$1 want=$2; shift 2
  "$cli" "$@" >"$out" 2>"$err"; local rc=$?
  [ "$rc" = "$want" ]; check "$name (exit $rc, want $want)" $?
  [ "$rc" = "$want" ] || { echo "--- stdout"; cat "$out"; echo "--- stderr"; cat "$err"; } >&2
}
has() { grep -q -- "$2" "$3"; check "$1: '$2'" $?; }
hasnt() { ! grep -q -- "$2" "$3"; check "$1: no '$2'" $?; }
