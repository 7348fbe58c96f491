#!/usr/bin/env bash
# test_bench.sh - `medvlm bench`: help with an example, usage errors, the raw GEMM mode and a
# short real run on a small saved model, checking the JSON lines it prints.
set -u
cli=${MEDVLM_CLI:?MEDVLM_CLI not set (ctest sets it)}
fail=0 pass=0
check() { if eval "$2"; then pass=$((pass + 1)); else echo "FAIL: $1" >&2; fail=$((fail + 1)); fi; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

out=$("$cli" bench --help)
check "help has an example" '[[ "$out" == *"example:"* && "$out" == *"medvlm bench"* ]]'
"$cli" bench --only nope >/dev/null 2>"$tmp/err"; rc=$?
check "bad --only is a usage error (2)" '[ $rc -eq 2 ] && grep -q "expected vision or text" "$tmp/err"'
"$cli" bench --threads 0 >/dev/null 2>&1; rc=$?
check "bad --threads is a usage error" '[ $rc -eq 2 ]'
"$cli" bench --model "$tmp/none" --reps 1 >/dev/null 2>"$tmp/err"; rc=$?
check "missing model folder fails (1) with the path" '[ $rc -eq 1 ] && grep -q "$tmp/none" "$tmp/err"'

# --gemm: one JSON line per shape with a positive rate
"$cli" bench --gemm --reps 1 --threads 1 --json >"$tmp/gemm" 2>&1
check "gemm lines" '[ "$(grep -c "\"bench\": \"gemm\"" "$tmp/gemm")" -ge 6 ]'
check "gemm 1600x3072x768 rate" 'grep "\"m\": 1600, \"n\": 3072, \"k\": 768" "$tmp/gemm" | grep -Eq "\"gflops\": [0-9]*[1-9]"'

# a real run on the golden set's small model (vision only: its text vocabulary is the CLIP one)
golden=${MEDVLM_GOLDEN:-${MEDVLM_GOLDEN_DEFAULT:-}}
if [ -d "$golden/model" ]; then
  "$cli" bench --model "$golden/model" --only vision --batch 3 --reps 2 --threads 2 --json \
    >"$tmp/v" 2>"$tmp/err"; rc=$?
  check "vision bench runs" '[ $rc -eq 0 ]'
  line=$(grep '"bench": "vision"' "$tmp/v")
  for key in batch per_s gflops threads peak_rss_mb median_s; do
    check "vision JSON has $key" '[[ "$line" == *"\"$key\": "* ]]'
  done
  check "vision batch 3, 2 threads" '[[ "$line" == *"\"batch\": 3,"* && "$line" == *"\"threads\": 2,"* ]]'
  "$cli" bench --model "$golden/model" --only text --reps 1 --json --profile >"$tmp/t" 2>"$tmp/err"
  check "text bench: lengths 77 and 18" 'grep -q "\"len\": 77" "$tmp/t" && grep -q "\"len\": 18" "$tmp/t"'
  check "text profile lines" 'grep -q "\"profile\": \"text\"" "$tmp/t"'
else
  echo "FAIL: golden model not found under '$golden' (set MEDVLM_GOLDEN)" >&2
  fail=$((fail + 1))
fi
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
