#!/usr/bin/env bash
# test_bench.sh - `medvlm bench`: help with an example, usage errors, the CPU line every run
# starts with, the raw GEMM mode as a share of the peak, the peak loops (--peak), a short real
# run on a small saved model and a fine-tuning step (--train) on a tiny one, checking the JSON
# lines they print.
set -u
cli=${MEDVLM_CLI:?MEDVLM_CLI not set (ctest sets it)}
fail=0 pass=0
check() { if eval "$2"; then pass=$((pass + 1)); else echo "FAIL: $1" >&2; fail=$((fail + 1)); fi; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

out=$("$cli" bench --help)
check "help has an example" '[[ "$out" == *"example:"* && "$out" == *"medvlm bench"* ]]'
"$cli" bench --only nope >/dev/null 2>"$tmp/err"; rc=$?
check "bad --only is a usage error (2)" '[ $rc -eq 2 ] && grep -q -- "--only expects one of both/vision/text" "$tmp/err"'
"$cli" bench --threads 0 >/dev/null 2>&1; rc=$?
check "bad --threads is a usage error" '[ $rc -eq 2 ]'
"$cli" bench --model "$tmp/none" --reps 1 >/dev/null 2>"$tmp/err"; rc=$?
check "missing model folder fails (1) with the path" '[ $rc -eq 1 ] && grep -q "$tmp/none" "$tmp/err"'

# --gemm: one JSON line per shape with a positive rate
"$cli" bench --gemm --reps 1 --threads 1 --json >"$tmp/gemm" 2>&1
check "gemm lines" '[ "$(grep -c "\"bench\": \"gemm\"" "$tmp/gemm")" -ge 6 ]'
check "gemm 1600x3072x768 rate" 'grep "\"m\": 1600, \"n\": 3072, \"k\": 768" "$tmp/gemm" | grep -Eq "\"gflops\": [0-9]*[1-9]"'

# the first line names the CPU: model, vendor, family/model numbers, threads, the flags
cpu=$(head -1 "$tmp/gemm")
check "gemm: the CPU line first" '[[ "$cpu" == "{\"bench\": \"cpu\", \"model_name\": \""* ]]'
check "CPU line: vendor, family, model, threads" '[[ "$cpu" =~ \"vendor\":\ \"[^\"]+\",\ \"family\":\ [0-9]+,\ \"model\":\ [0-9]+,.*\"threads\":\ 1, ]]'
for f in avx2 fma avx512f avx512_bf16 amx_bf16; do
  check "CPU line: flag $f" '[[ "$cpu" =~ \"$f\":\ (true|false) ]]'
done
has() { [[ "$cpu" == *"\"$1\": true"* ]]; }
# each GEMM figure as a share of the fp32 peak at the same threads (zmm, or ymm without AVX-512)
if has avx2 && has fma; then
  ngemm=$(grep -c '"bench": "gemm"' "$tmp/gemm")
  check "gemm: every line carries of_peak" '[ "$(grep "\"bench\": \"gemm\"" "$tmp/gemm" | grep -Ec "\"peak_gflops\": [0-9.]*[1-9][0-9.]*, \"peak_kind\": \"fp32_[yz]mm\", \"of_peak\": [0-9]+\.[0-9]{3}\}$")" -eq "$ngemm" ]'
  check "gemm: the peak it measured" 'grep -q "\"bench\": \"peak\", \"kind\": \"fp32_[yz]mm\", \"threads\": 1," "$tmp/gemm"'
fi

# --peak: one line per kind at 1 thread and at --threads, positive where the CPU has the kind
"$cli" bench --peak --threads 2 --json >"$tmp/peak" 2>"$tmp/err"; rc=$?
check "peak runs" '[ $rc -eq 0 ]'
check "peak: the CPU line first" 'head -1 "$tmp/peak" | grep -q "^{\"bench\": \"cpu\", .*\"threads\": 2,"'
check "peak: 6 well-formed lines" '[ "$(grep -Ec "^\{\"bench\": \"peak\", \"kind\": \"(fp32_zmm|fp32_ymm|bf16_dot)\", \"threads\": [12], \"gflops\": [0-9]+\.[0-9], \"available\": (true|false)\}$" "$tmp/peak")" -eq 6 ] && [ "$(wc -l <"$tmp/peak")" -eq 7 ]'
peak_ok() { # peak_ok KIND FLAG...: positive at 1 and 2 threads where the CPU has every FLAG, else unavailable
  local kind=$1 avail=1; shift
  for f in "$@"; do has "$f" || avail=0; done
  for t in 1 2; do
    l=$(grep "\"kind\": \"$kind\", \"threads\": $t," "$tmp/peak")
    if [ $avail = 1 ]; then
      [[ "$l" =~ \"gflops\":\ [0-9.]*[1-9][0-9.]*,\ \"available\":\ true ]] || return 1
    else
      [[ "$l" == *'"gflops": 0.0, "available": false}' ]] || return 1
    fi
  done
}
check "peak fp32_zmm (avx512f)" 'peak_ok fp32_zmm avx512f'
check "peak fp32_ymm (avx2, fma)" 'peak_ok fp32_ymm avx2 fma'
check "peak bf16_dot (avx512_bf16)" 'peak_ok bf16_dot avx512f avx512_bf16'
"$cli" bench --peak --threads 1 >"$tmp/peakh" 2>"$tmp/err"; rc=$?
check "peak, human: CPU line, then one line per kind" '[ $rc -eq 0 ] && head -1 "$tmp/peakh" | grep -q "^cpu .*family [0-9]* model [0-9]*.*1 thread of .* flags" && [ "$(grep -Ec "^peak (fp32 zmm|fp32 ymm|bf16 dot) +1 thread +([0-9.]+ GFLOP/s|unavailable)" "$tmp/peakh")" -eq 3 ]'

# a real run on the golden set's small model (vision only: its text vocabulary is the CLIP one)
golden=${MEDVLM_GOLDEN:-${MEDVLM_GOLDEN_DEFAULT:-}}
if [ -d "$golden/model" ]; then
  "$cli" bench --model "$golden/model" --only vision --batch 3 --reps 2 --threads 2 --json \
    >"$tmp/v" 2>"$tmp/err"; rc=$?
  check "vision bench runs" '[ $rc -eq 0 ]'
  check "vision bench: the CPU line first" 'head -1 "$tmp/v" | grep -q "^{\"bench\": \"cpu\""'
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
# --train: one LoRA step on a tiny random model, its JSON line and the profile split
"$cli" bench --train nope >/dev/null 2>"$tmp/err"; rc=$?
check "bad --train is a usage error (2)" '[ $rc -eq 2 ] && grep -q "expected lora" "$tmp/err"'
"$cli" bench --gemm-backend nope >/dev/null 2>"$tmp/err"; rc=$?
check "bad --gemm-backend is a usage error (2)" '[ $rc -eq 2 ] && grep -q -- "--gemm-backend expects one of auto/openblas/packed" "$tmp/err"'
"$cli" init model --preset tiny "$tmp/tiny" >/dev/null 2>"$tmp/err"
check "tiny model made" '[ -f "$tmp/tiny/model.safetensors" ]'
"$cli" bench --model "$tmp/tiny" --train lora --batch 2 --reps 1 --threads 1 --json --profile \
  >"$tmp/tr" 2>"$tmp/err"; rc=$?
check "train bench runs" '[ $rc -eq 0 ]'
line=$(grep '"bench": "train"' "$tmp/tr")
for key in peft batch step_s peak_rss_mb threads gflops trainable workspace_mb; do
  check "train JSON has $key" '[[ "$line" == *"\"$key\": "* ]]'
done
check "train lora batch 2, 1 thread" '[[ "$line" == *"\"peft\": \"lora\""* && "$line" == *"\"batch\": 2,"* && "$line" == *"\"threads\": 1,"* ]]'
check "train step time and rate positive" '[[ "$line" =~ \"step_s\":\ 0\.[0-9]*[1-9] || "$line" =~ \"step_s\":\ [1-9] ]] && [[ "$line" =~ \"gflops\":\ [0-9.]*[1-9] ]]'
check "train profile: forward and backward GEMM, optimiser" 'grep "\"phase\": \"forward\"" "$tmp/tr" | grep -q gemm && grep "\"phase\": \"backward\"" "$tmp/tr" | grep -q gemm && grep -q "\"phase\": \"optimizer\"" "$tmp/tr"'
"$cli" bench --model "$tmp/tiny" --train full --batch 2 --reps 1 --threads 2 --json >"$tmp/tf" 2>"$tmp/err"; rc=$?
check "train full runs at 2 threads" '[ $rc -eq 0 ] && grep -q "\"peft\": \"full\"" "$tmp/tf"'
"$cli" bench --model "$tmp/tiny" --train ln --batch 2 --reps 1 --gemm-backend openblas --json >"$tmp/to" 2>"$tmp/err"; rc=$?
check "train on OpenBLAS names it" '[ $rc -eq 0 ] && grep -q "\"gemm_backend\": \"openblas" "$tmp/to"'

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
