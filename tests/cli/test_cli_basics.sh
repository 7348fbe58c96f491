#!/usr/bin/env bash
# The CLI behaves as a Unix tool: help, version, exit codes 0/1/2, results on stdout,
# diagnostics on stderr; `medvlm info` on the golden model prints its architecture.
set -u
cli=${MEDVLM_CLI:?run through ctest}
golden=${MEDVLM_GOLDEN:-${MEDVLM_GOLDEN_DEFAULT:-}}
pass=0 fail=0
check() { # check NAME CONDITION-RESULT
  if [ "$2" = 0 ]; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL $1" >&2; fi
}
expect_rc() { # expect_rc NAME WANT CMD...
  local name=$1 want=$2; shift 2
  "$@" >/tmp/medvlm_cli_out.$$ 2>/tmp/medvlm_cli_err.$$; local rc=$?
  [ "$rc" = "$want" ]; check "$name (exit $rc, want $want)" $?
}

expect_rc "--help" 0 "$cli" --help
grep -q '^  info ' /tmp/medvlm_cli_out.$$; check "--help lists info" $?
expect_rc "--version" 0 "$cli" --version
grep -Eq '^medvlm [0-9]+\.[0-9]+\.[0-9]+$' /tmp/medvlm_cli_out.$$; check "version format" $?
expect_rc "no args" 2 "$cli"
expect_rc "unknown command" 2 "$cli" frobnicate
grep -q "unknown command 'frobnicate'" /tmp/medvlm_cli_err.$$; check "unknown command message" $?
expect_rc "info --help" 0 "$cli" info --help
grep -q 'example' /tmp/medvlm_cli_out.$$; check "info --help has an example" $?
expect_rc "info without dir" 2 "$cli" info
expect_rc "info bad option" 2 "$cli" info --bogus x
expect_rc "info missing dir" 1 "$cli" info /nonexistent/model
[ ! -s /tmp/medvlm_cli_out.$$ ]; check "errors go to stderr only" $?

if [ -z "$golden" ] || [ ! -f "$golden/manifest.json" ]; then
  echo "golden folder not found ('$golden'): set MEDVLM_GOLDEN" >&2
  fail=$((fail + 1))
else
  expect_rc "info golden" 0 "$cli" info "$golden/model"
  out=/tmp/medvlm_cli_out.$$
  grep -Eq '^vision tower$' $out && grep -Eq '^text tower$' $out; check "both towers described" $?
  grep -q 'parameters total' $out; check "parameter total printed" $?
  expect_rc "info --json golden" 0 "$cli" info --json "$golden/model"
  grep -q '"exp_logit_scale":' /tmp/medvlm_cli_out.$$ && grep -q '"parameters":{"text":' /tmp/medvlm_cli_out.$$
  check "json keys" $?
  [ "$(wc -l < /tmp/medvlm_cli_out.$$)" = 1 ]; check "json is one line" $?
fi
rm -f /tmp/medvlm_cli_out.$$ /tmp/medvlm_cli_err.$$
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
