#!/usr/bin/env bash
# `medvlm adapt` and `medvlm predict` on a small synthetic task written by test_featfile
# (tests/unit/test_featfile.c --make): printed numbers, saved files, and every error case.
set -u
cli=${MEDVLM_CLI:?run through ctest}
gen=./test_featfile
. "$(dirname "$0")/harness.sh" # check, run, has, hasnt; $tmp, $out, $err

if [ ! -x "$gen" ]; then
  echo "FAIL test_featfile helper not found in $(pwd)" >&2
  echo "0 passed, 1 failed"; exit 1
fi
"$gen" --make "$tmp" || { echo "FAIL fixtures"; echo "0 passed, 1 failed"; exit 1; }
T="--train $tmp/train.safetensors --test $tmp/test.safetensors"
P="--prototypes $tmp/protos.safetensors"

# zero-shot: by construction recall 1, 1, 4/6 -> ACA 88.89 %
run "zeroshot" 0 adapt --method zeroshot $T $P --shots 4
has "zeroshot" "balanced accuracy  88.89 %" "$out"
grep -Eq '^grade 4 +0\.667 ' "$out"; check "zeroshot grade 4 recall" $?
has "zeroshot" "^adapt: 4-shot, 12 training images (of 26 in" "$out"

# Tip-Adapter with a strong, sharp cache learns the misplaced grade 4 images (seed 2 draws one)
run "tipadapter" 0 adapt --method tipadapter --alpha 100 --beta 20 $T $P --shots 4 --seed 2 \
    --out "$tmp/tip.safetensors" --json "$tmp/tip.json"
has "tipadapter" "balanced accuracy  100.00 %" "$out"
has "tipadapter" "saved tipadapter adapter (seed 2) to $tmp/tip.safetensors" "$out"
has "tipadapter json" '"method":	"tipadapter"' "$tmp/tip.json"
run "predict tip" 0 predict --adapter "$tmp/tip.safetensors" --features "$tmp/test.safetensors" \
    --predictions "$tmp/pred.csv" --json "$tmp/m.json"
has "predict tip" "^predict: tipadapter adapter (4-shot, 3 classes, D 16) on 18 images" "$out"
has "predict tip" "balanced accuracy  100.00 %" "$out"
grep -Eq '"balanced_accuracy":[[:space:]]*100' "$tmp/m.json"; check "predict --json balanced_accuracy" $?
[ "$(wc -l <"$tmp/pred.csv")" = 19 ]; check "predictions: header + 18 rows" $?
has "predictions" "^image,true_label,predicted_label,p_benign,p_grade 3,p_grade 4" "$tmp/pred.csv"
has "predictions" "^g4_00.png,grade 4,grade 4," "$tmp/pred.csv"

# a trained adapter: adapt and predict agree on the same shots
run "clap" 0 adapt --method clap $T $P --shots 4 --seed 3 --out "$tmp/clap.safetensors"
has "clap" "^clap: 100 epochs, batch 32, sgd lr 0.001 momentum 0.9: 100 steps, loss" "$out"
aca=$(grep '^balanced accuracy' "$out")
run "predict clap" 0 predict --adapter "$tmp/clap.safetensors" --features "$tmp/test.safetensors"
has "predict = adapt" "^$aca\$" "$out"
# the momentum printed is the one used
run "momentum 0.5" 0 adapt --method zslp $T $P --shots 4 --seed 3 --epochs 5 --momentum 0.5
has "momentum 0.5" "^zslp: 5 epochs, batch 32, sgd lr 0.001 momentum 0.5: 5 steps" "$out"
run "adam: no momentum" 0 adapt --method zslp $T $P --shots 4 --epochs 5 --optimizer adam
has "adam: no momentum" "^zslp: 5 epochs, batch 32, adam lr 0.001: 5 steps" "$out"

# the thread count is a speed choice only: the same adapter file bytes
run "threads 1" 0 adapt --method clap $T $P --shots 4 --seed 3 --threads 1 --out "$tmp/clap1.safetensors"
run "threads 2" 0 adapt --method clap $T $P --shots 4 --seed 3 --threads 2 --out "$tmp/clap2.safetensors"
cmp -s "$tmp/clap1.safetensors" "$tmp/clap2.safetensors"; check "threads 1 = threads 2 = default" $?
cmp -s "$tmp/clap1.safetensors" "$tmp/clap.safetensors"; check "threads 1 = default" $?
run "threads 0" 2 adapt --method clap $T $P --shots 4 --threads 0
has "threads 0" "--threads expects an integer in 1..1024, got '0'" "$err"

# CLAP's augmented-Lagrangian variant: rho from 0 by default, any non-negative start accepted
run "clap-alm" 0 adapt --method clap --clap-alm $T $P --shots 4 --seed 3 --out "$tmp/alm.safetensors"
run "clap-alm rho" 0 adapt --method clap --clap-alm --rho 0.5 $T $P --shots 4 --seed 3
run "clap-alm bad rho" 2 adapt --method clap --clap-alm --rho -1 $T $P --shots 4
has "clap-alm bad rho" "--rho expects a non-negative number, got '-1'" "$err"

# several seeds: the mean of the per-seed column is the printed mean
run "seeds" 0 adapt --method lp $T $P --shots 4 --seeds 1,2,3 --epochs 50 --optimizer adam --lr 0.01
has "seeds" "^seeds 1 2 3" "$out"
awk '$1 == "lp" { m = ($6 + $7 + $8) / 3; d = m - $2; if (d < 0) d = -d; exit !(NF == 8 && d < 0.01) }' "$out"
check "seeds: mean of the per-seed ACA" $?

# every method on the same shots, zero-shot row first
run "all" 0 adapt --method all $T $P --shots 4 --seed 1
for m in zeroshot lp zslp clipadapter clap tipadapter tipadapter-f taskres; do
  grep -Eq "^$m +[0-9]+\.[0-9]{2} +0\.00 " "$out"; check "all: row $m" $?
done
grep -Eq '^zeroshot +88\.89 ' "$out"; check "all: zero-shot ACA" $?

# --methods: a list, one row each in the order given (a single one prints the full table)
run "methods list" 0 adapt --methods tipadapter,zeroshot $T $P --shots 4 --seed 1
awk '$1 == "tipadapter" { t = NR } $1 == "zeroshot" { z = NR } END { exit !(t && z && t < z) }' "$out"
check "methods list: rows in the order given" $?
grep -Eq '^(lp|clap) ' "$out"; [ $? = 1 ]; check "methods list: only those listed" $?
run "methods all" 0 adapt --methods all $T $P --shots 4 --seed 1
grep -Eq '^zeroshot +88\.89 ' "$out"; check "methods all: zero-shot ACA" $?
run "methods one" 0 adapt --methods zeroshot $T $P --shots 4
has "methods one" "balanced accuracy  88.89 %" "$out"
run "methods twice" 2 adapt --methods lp,lp $T $P --shots 4
has "methods twice" "method 'lp' is listed twice in 'lp,lp'" "$err"
run "methods unknown" 2 adapt --methods lp,clapp $T $P --shots 4
has "methods unknown" "unknown adapter method 'clapp'; valid methods: zeroshot, lp" "$err"
run "method and methods" 2 adapt --method lp --methods all $T $P --shots 4
has "method and methods" "give --method or --methods once" "$err"
run "out with a list" 2 adapt --methods lp,clap $T $P --shots 4 --out "$tmp/x.safetensors"
has "out with a list" "--out saves one adapter: name one --method, not 'lp,clap'" "$err"

# errors: one clear line, no crash
run "dimension mismatch" 1 adapt --method clap $T --prototypes "$tmp/protos8.safetensors" --shots 4
has "dimension mismatch" "16-dimensional features but the prototypes of .* are 8-dimensional" "$err"
run "class names" 1 adapt --method clap $T --prototypes "$tmp/protos_renamed.safetensors" --shots 4
has "class names" "class 1 is 'grade 3' in .* but 'G3' in the prototypes" "$err"
run "too few" 1 adapt --method clap $T $P --shots 8
has "too few" "class 'grade 4' has 6 training images in .*, fewer than the 8 shots" "$err"
run "allow fewer" 0 adapt --method clap $T $P --shots 8 --allow-fewer
has "allow fewer" "note: class 'grade 4' has 6 training images, fewer than 8" "$err"
has "allow fewer" "^adapt: 8-shot, 22 training images" "$out"
run "zero shots" 2 adapt --method clap $T $P --shots 0
has "zero shots" "--shots expects an integer >= 1" "$err"
run "unknown method" 2 adapt --method clipadaptor $T $P --shots 4
has "unknown method" "unknown adapter method 'clipadaptor'; valid methods: zeroshot, lp, zslp, clipadapter, clap, tipadapter, tipadapter-f, taskres" "$err"
run "missing file" 1 adapt --method lp --train "$tmp/nope.safetensors" --test "$tmp/test.safetensors" $P --shots 4
has "missing file" "nope.safetensors" "$err"
run "prototypes as features" 1 adapt --method lp --train "$tmp/protos.safetensors" --test "$tmp/test.safetensors" $P --shots 4
has "prototypes as features" "not a medvlm features file" "$err"
run "out with all" 2 adapt --method all $T $P --shots 4 --out "$tmp/x.safetensors"
run "bad lr" 2 adapt --method lp $T $P --shots 4 --lr -1
has "bad lr" "--lr expects a non-negative number" "$err"
run "bad optimizer" 2 adapt --method lp $T $P --shots 4 --optimizer rmsprop
run "no shots" 2 adapt --method lp $T $P
# the zero-shot classifier: --prompts with --model (test_end_to_end runs them), or --prototypes
run "no classifier" 2 adapt --method lp $T --shots 4
has "no classifier" "the zero-shot classifier is required: --prompts FILE with --model DIR, or --prototypes FILE" "$err"
run "prompts alone" 2 adapt --method lp $T --prompts "$tmp/p.json" --shots 4
has "prompts alone" "--prompts needs --model DIR" "$err"
run "model alone" 2 adapt --method lp $T --model "$tmp/model" --shots 4
has "model alone" "--model needs --prompts FILE" "$err"
run "both classifiers" 2 adapt --method lp $T $P --prompts "$tmp/p.json" --model "$tmp/model" --shots 4
has "both classifiers" "give --prompts with --model, or --prototypes: not both" "$err"
run "adapt help" 0 adapt --help
has "adapt help" "example" "$out"
run "predict wrong dims" 1 predict --adapter "$tmp/tip.safetensors" --features "$tmp/protos8.safetensors"
has "predict wrong dims" "not a medvlm features file" "$err"
run "predict not an adapter" 1 predict --adapter "$tmp/test.safetensors" --features "$tmp/test.safetensors"
has "predict not an adapter" "not a medvlm adapter file" "$err"
run "predict missing" 2 predict --adapter "$tmp/tip.safetensors"
[ ! -s "$out" ]; check "errors print nothing on stdout" $?

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
