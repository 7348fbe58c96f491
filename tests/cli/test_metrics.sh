#!/usr/bin/env bash
# test_metrics.sh - `medvlm metrics` on a hand-made predictions table: the printed report and
# the JSON file (values computed by hand with sklearn's definitions), and its errors.
set -u
cli=${MEDVLM_CLI:?set MEDVLM_CLI to the medvlm binary}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fails=0 passes=0
ok() { passes=$((passes + 1)); }
bad() { fails=$((fails + 1)); echo "FAIL: $*" >&2; }

printf 'image,true_label,predicted_label,p_NC,p_G3,p_G4,p_G5\r\n' > "$tmp/p.csv"
printf '%s\r\n' a,NC,NC,1,0,0,0 b,NC,G3,0,1,0,0 c,G3,G3,0,1,0,0 d,G3,G3,0,1,0,0 e,G4,G4,0,0,1,0 \
  f,G4,NC,1,0,0,0 '"g,1",G4,G4,0,0,1,0' h,G5,G5,0,0,0,1 >> "$tmp/p.csv"
"$cli" metrics --json "$tmp/m.json" "$tmp/p.csv" > "$tmp/out" 2> "$tmp/err" || bad "exit $?: $(cat "$tmp/err")"
grep -q "^balanced accuracy  79.17 %$" "$tmp/out" && ok || bad "ACA: $(cat "$tmp/out")"
grep -q "^accuracy           75.00 %$" "$tmp/out" && ok || bad "accuracy"
grep -q "^quadratic kappa    0.6774$" "$tmp/out" && ok || bad "kappa"
grep -q "^G4       0.667      1.000    0.800        3$" "$tmp/out" && ok || bad "G4 row"
grep -q "^G4      1   0   2   0$" "$tmp/out" && ok || bad "confusion row G4"
grep -q '"classes":.*\["NC", "G3", "G4", "G5"\]' "$tmp/m.json" && ok || bad "json classes"
grep -q '"balanced_accuracy":.*79.16666666666665' "$tmp/m.json" && ok || bad "json ACA: $(cat "$tmp/m.json")"
tr -d ' \t\n' < "$tmp/m.json" | grep -q '"confusion_matrix":\[\[1,1,0,0\],\[0,2,0,0\],\[1,0,2,0\],\[0,0,0,1\]\]' && ok || bad "json confusion"
# class order from --classes; a class with no true sample
"$cli" metrics --classes G5,G4,G3,NC,G9 "$tmp/p.csv" > "$tmp/out" 2> "$tmp/err"
grep -q "^G9         n/a      0.000    0.000        0$" "$tmp/out" && grep -q "class 4 has no sample" "$tmp/err" \
  && grep -q "^balanced accuracy  79.17 %$" "$tmp/out" && ok || bad "--classes with absent class: $(cat "$tmp/out" "$tmp/err")"
# errors
printf 'image,true_label,predicted_label\na,NC,G7\n' > "$tmp/u.csv"
"$cli" metrics --classes NC,G3 "$tmp/u.csv" > "$tmp/o" 2> "$tmp/e"
[ $? -eq 1 ] && grep -q "u.csv: line 2: unknown class 'G7' in column predicted_label" "$tmp/e" && ok || bad "unknown: $(cat "$tmp/e")"
printf 'image,label\na,NC\n' > "$tmp/c.csv"
"$cli" metrics "$tmp/c.csv" > "$tmp/o" 2> "$tmp/e"
[ $? -eq 1 ] && grep -q "expected columns true_label and predicted_label" "$tmp/e" && ok || bad "columns"
"$cli" metrics > "$tmp/o" 2> "$tmp/e"
[ $? -eq 2 ] && grep -q "expected one PREDICTIONS file" "$tmp/e" && ok || bad "usage"

echo "$passes passed, $fails failed"
[ $fails -eq 0 ]
