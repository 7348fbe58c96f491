#!/usr/bin/env bash
# --report FILE.html on zeroshot, predict and adapt: the file is written, parses as XML
# (xmllint), fetches nothing, shows the balanced accuracy string stdout printed and the
# --json value, embeds thumbnails of the misclassified images, and is not written when the
# command fails.
set -u
cli=${MEDVLM_CLI:?run through ctest}
gen=./test_featfile
. "$(dirname "$0")/harness.sh" # check, run, has, hasnt; $tmp, $out, $err
. "$(dirname "$0")/serve_harness.sh" # serve_fixtures

command -v xmllint >/dev/null || { echo "FAIL xmllint is needed (Makefile DEB_PACKAGES: libxml2-utils)"; echo "0 passed, 1 failed"; exit 1; }
[ -x "$gen" ] && "$gen" --make "$tmp" || serve_stop_test "fixtures: $gen --make"
serve_fixtures

# report FILE: well-formed, no script, nothing fetched; the stdout ACA string in it
report_ok() {
  local name=$1 file=$2
  [ -s "$file" ]; check "$name: written" $?
  xmllint --noout "$file" 2>"$tmp/xmllint.err"; check "$name: well-formed (xmllint)" $?
  [ -s "$tmp/xmllint.err" ] && head -5 "$tmp/xmllint.err" >&2
  hasnt "$name: no script" '<script' "$file"
  hasnt "$name: nothing fetched" 'src="http' "$file"
}
aca_same() { # the ACA string of stdout in the report, and the --json value rounded alike
  local name=$1 file=$2 json=${3:-}
  local aca
  aca=$(sed -n 's/^balanced accuracy  *\([0-9.n/a]*\) %$/\1/p' "$out")
  [ -n "$aca" ]; check "$name: stdout has an ACA" $?
  has "$name: the ACA of stdout ($aca)" "id=\"balanced-accuracy\">$aca %<" "$file"
  if [ -n "$json" ]; then
    j=$(sed -n 's/.*"balanced_accuracy":[[:space:]]*\([0-9.eE+-]*\).*/\1/p' "$json" | head -1)
    [ "$(awk -v x="$j" 'BEGIN { printf "%.2f", x }')" = "$aca" ]
    check "$name: --json's balanced_accuracy ($j) prints as $aca" $?
  fi
}

run "zeroshot features" 0 zeroshot --model "$tmp/model" --prompts "$tmp/prompts.json" \
  --features "$tmp/feats.safetensors" --report "$tmp/zs.html" --report-images "$tmp/data/images" \
  --json "$tmp/zs.json"
report_ok "zeroshot" "$tmp/zs.html"
aca_same "zeroshot" "$tmp/zs.html" "$tmp/zs.json"
wrong=$("$cli" zeroshot --model "$tmp/model" --prompts "$tmp/prompts.json" \
  --features "$tmp/feats.safetensors" --predictions "$tmp/p.csv" >/dev/null; awk -F, 'NR > 1 && $2 != $3' "$tmp/p.csv" | wc -l)
has "zeroshot: misclassified count" "$wrong of 12 misclassified" "$tmp/zs.html"
[ "$(grep -o 'data:image/jpeg;base64' "$tmp/zs.html" | wc -l)" = "$wrong" ]
check "zeroshot: one thumbnail per misclassified image ($wrong)" $?
has "zeroshot: confusion heatmap" 'id="confusion"' "$tmp/zs.html"
has "zeroshot: summary line" 'zero-shot, 12 images, 4 classes, 4 prompts' "$tmp/zs.html"

run "zeroshot dataset" 0 zeroshot --model "$tmp/model" --prompts "$tmp/prompts.json" \
  --images "$tmp/data/images" --labels "$tmp/data/labels.csv" --report "$tmp/zs2.html"
report_ok "zeroshot dataset" "$tmp/zs2.html"
aca_same "zeroshot dataset" "$tmp/zs2.html"
[ "$(grep -o 'data:image/jpeg;base64' "$tmp/zs2.html" | wc -l)" = "$wrong" ]
check "zeroshot dataset: thumbnails from the dataset's folder" $?

T="--train $tmp/train.safetensors --test $tmp/test.safetensors"
P="--prototypes $tmp/protos.safetensors"
run "adapt" 0 adapt --method clap $T $P --shots 4 --seed 3 --out "$tmp/clap.safetensors" \
  --report "$tmp/adapt.html" --json "$tmp/adapt.json"
report_ok "adapt" "$tmp/adapt.html"
aca_same "adapt" "$tmp/adapt.html"
has "adapt: loss curve" 'id="loss"' "$tmp/adapt.html"
has "adapt: loss as printed" "$(sed -n 's/.*steps, \(loss [0-9.]* -> [0-9.]*\),.*/\1/p' "$out" | sed 's/ -> / \&#8594; /')" "$tmp/adapt.html"
has "adapt: grade names escaped or plain" 'grade 4' "$tmp/adapt.html"

run "predict" 0 predict --adapter "$tmp/clap.safetensors" --features "$tmp/test.safetensors" \
  --report "$tmp/pred.html" --json "$tmp/pred.json"
report_ok "predict" "$tmp/pred.html"
aca_same "predict" "$tmp/pred.html" "$tmp/pred.json"

run "adapt seeds" 0 adapt --methods lp,zeroshot $T $P --shots 4 --seeds 1,2 --epochs 20 \
  --report "$tmp/seeds.html"
report_ok "adapt seeds" "$tmp/seeds.html"
has "adapt seeds: the seed table" 'id="seeds"' "$tmp/seeds.html"
zs=$(awk '$1 == "zeroshot" { print $2 }' "$out")
has "adapt seeds: zero-shot mean as printed ($zs)" "<td>zeroshot</td><td class=\"num\">$zs</td>" "$tmp/seeds.html"
hasnt "adapt seeds: no single-run table" 'id="balanced-accuracy"' "$tmp/seeds.html"

# failures write no report
run "zeroshot bad prompts" 1 zeroshot --model "$tmp/model" --prompts "$tmp/none.json" \
  --features "$tmp/feats.safetensors" --report "$tmp/fail1.html"
[ ! -e "$tmp/fail1.html" ]; check "bad prompts: no report" $?
run "predict bad features" 1 predict --adapter "$tmp/clap.safetensors" \
  --features "$tmp/none.safetensors" --report "$tmp/fail2.html"
[ ! -e "$tmp/fail2.html" ]; check "bad features: no report" $?
run "report into a missing folder" 1 predict --adapter "$tmp/clap.safetensors" \
  --features "$tmp/test.safetensors" --report "$tmp/no/such/dir/r.html"
has "report into a missing folder: named" "no/such/dir" "$err"
ls "$tmp"/no 2>/dev/null | grep -q .; [ $? != 0 ]; check "missing folder: nothing written" $?
run "report missing value" 2 predict --adapter "$tmp/clap.safetensors" --features "$tmp/test.safetensors" --report

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
