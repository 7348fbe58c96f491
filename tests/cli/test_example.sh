#!/usr/bin/env bash
# The complete zero-shot program of include/medvlm.h: the header's copy is examples/zeroshot.c
# line for line, and the built program prints the same metrics as `medvlm zeroshot`.
cli=${MEDVLM_CLI:?} example=${MEDVLM_EXAMPLE_ZEROSHOT:?} src=${MEDVLM_SOURCE_DIR:?}
. "$src/tests/cli/harness.sh"

# the header's example: the lines after "A complete zero-shot program" up to "Conventions",
# without the comment's " *     " indent
awk '/^ \* A complete zero-shot program/ { on = 1; next } /^ \* Conventions/ { on = 0 }
     on && /^ \*     / { for (; blank; blank--) print ""; print substr($0, 8); started = 1 }
     on && /^ \*$/ && started { blank++ }' "$src/include/medvlm.h" >"$tmp/header.c"
diff -u "$src/examples/zeroshot.c" "$tmp/header.c" >"$tmp/diff"; check "header example = examples/zeroshot.c (after an edit: python3 tools/sync-header-example.py)" $?
[ -s "$tmp/diff" ] && cat "$tmp/diff" >&2

"$cli" init model --preset tiny --seed 3 "$tmp/model" >/dev/null; check "init model" $?
"$cli" init data --per-class 6 --size 64 --seed 5 "$tmp/data" >/dev/null; check "init data" $?
"$cli" features --model "$tmp/model" --images "$tmp/data/images" --labels "$tmp/data/labels.csv" \
  --classes NC,G3,G4,G5 --out "$tmp/feats.safetensors" >/dev/null; check "features" $?
prompts=$src/examples/sicapv2_ensemble.json
run "zeroshot" 0 zeroshot --model "$tmp/model" --prompts "$prompts" --features "$tmp/feats.safetensors"
tail -n +2 "$out" >"$tmp/cli.txt"
"$example" "$tmp/model" "$prompts" "$tmp/feats.safetensors" >"$tmp/ex.txt" 2>"$tmp/ex.err"
check "example runs" $?
cmp -s "$tmp/cli.txt" "$tmp/ex.txt"; check "example prints medvlm zeroshot's table" $?
grep -q "balanced accuracy" "$tmp/ex.txt"; check "example prints the balanced accuracy" $?
"$example" "$tmp/model" "$prompts" "$tmp/none.safetensors" >/dev/null 2>"$tmp/ex.err"
[ $? = 1 ]; check "example: a missing file fails" $?
grep -q "none.safetensors" "$tmp/ex.err"; check "example: the message names the file" $?
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
