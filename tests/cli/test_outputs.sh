#!/usr/bin/env bash
# What medvlm writes: output that does not reach standard output is a failure (exit 1, the
# error said); no command writes over one of its own inputs, a model's files or another of its
# outputs; init refuses a folder that holds something; every flag a --help names exists.
cli=${MEDVLM_CLI:?} src=${MEDVLM_SOURCE_DIR:?}
. "$src/tests/cli/harness.sh"

"$cli" init model --preset tiny --seed 3 "$tmp/model" >/dev/null; check "init model" $?
"$cli" init data --per-class 3 --size 64 --seed 5 "$tmp/data" >/dev/null; check "init data" $?
M=$tmp/model D=$tmp/data P=$src/examples/sicapv2_single.json
run "features" 0 features --model "$M" --images "$D/images" --labels "$D/labels.csv" \
  --classes NC,G3,G4,G5 --out "$tmp/f.safetensors"

# ---- standard output that cannot be written
for args in "info $M" "sample --labels $D/labels.csv --classes NC,G3,G4,G5 --shots 1" \
  "zeroshot --model $M --prompts $P --features $tmp/f.safetensors" \
  "tokenize --model $M a_prompt" "--help" "init --help"; do
  # shellcheck disable=SC2086
  "$cli" $args >/dev/full 2>"$err"; rc=$?
  [ "$rc" = 1 ]; check "$args >/dev/full: exit 1 (got $rc)" $?
  has "$args >/dev/full" "writing standard output failed: No space left on device" "$err"
done

# ---- outputs over inputs: refused before anything is written, the input unchanged
sum() { cksum <"$1"; }
before=$(sum "$D/labels.csv")
run "features --out = --labels" 2 features --model "$M" --images "$D/images" \
  --labels "$D/labels.csv" --classes NC,G3,G4,G5 --out "$D/labels.csv"
has "features --out = --labels" "--out $D/labels.csv is also the input --labels" "$err"
[ "$(sum "$D/labels.csv")" = "$before" ]; check "the label table unchanged" $?
before=$(sum "$M/model.safetensors")
run "features --out = the weights" 2 features --model "$M" --images "$D/images" \
  --labels "$D/labels.csv" --classes NC,G3,G4,G5 --out "$M/model.safetensors"
has "features --out = the weights" "would overwrite model.safetensors of the model $M" "$err"
[ "$(sum "$M/model.safetensors")" = "$before" ]; check "the weights unchanged" $?
cp "$P" "$tmp/p.json"
before=$(sum "$tmp/p.json")
run "zeroshot --json = --prompts" 2 zeroshot --model "$M" --prompts "$tmp/p.json" \
  --features "$tmp/f.safetensors" --json "$tmp/p.json"
has "zeroshot --json = --prompts" "--json $tmp/p.json is also the input --prompts" "$err"
[ "$(sum "$tmp/p.json")" = "$before" ]; check "the prompts unchanged" $?
run "zeroshot: two outputs, one path" 2 zeroshot --model "$M" --prompts "$P" \
  --features "$tmp/f.safetensors" --json "$tmp/x" --predictions "$tmp/x"
has "two outputs" "--json and --predictions both write $tmp/x" "$err"
[ ! -e "$tmp/x" ]; check "nothing written" $?
# the same file under another name is the same file
ln -s "$tmp/f.safetensors" "$tmp/link.safetensors"
run "zeroshot --predictions = --features via a link" 2 zeroshot --model "$M" --prompts "$P" \
  --features "$tmp/f.safetensors" --predictions "$tmp/link.safetensors"
has "via a link" "is also the input --features" "$err"
run "zeroshot --save-prototypes" 0 zeroshot --model "$M" --prompts "$P" \
  --features "$tmp/f.safetensors" --save-prototypes "$tmp/protos.safetensors"
run "adapt --out = --train" 2 adapt --method zslp --train "$tmp/f.safetensors" \
  --test "$tmp/f.safetensors" --prototypes "$tmp/protos.safetensors" --shots 1 \
  --out "$tmp/f.safetensors"
has "adapt --out = --train" "--out $tmp/f.safetensors is also the input --train" "$err"
run "metrics --json = the table" 2 metrics --json "$D/labels.csv" "$D/labels.csv"
has "metrics --json = the table" "is also the input PREDICTIONS" "$err"
run "merge --out = --model" 2 merge --model "$M" --run "$tmp/none" --out "$M"
has "merge --out = --model" "--out $M would overwrite the model folder $M" "$err"
first=$(ls "$D/images" | head -1)
run "embed --out = an image" 2 embed --model "$M" --out "$D/images/$first" "$D/images/$first"
has "embed --out = an image" "is also the input IMAGE" "$err"

# ---- init: a folder that holds something is refused unless --force
before=$(sum "$M/model.safetensors")
run "init model over a model" 1 init model --preset tiny --seed 9 "$M"
has "init model over a model" "$M is not empty" "$err"
has "init model: the way out" "give --force" "$err"
[ "$(sum "$M/model.safetensors")" = "$before" ]; check "init: the weights unchanged" $?
before=$(sum "$D/labels.csv")
run "init data over a data set" 1 init data --per-class 2 "$D"
[ "$(sum "$D/labels.csv")" = "$before" ]; check "init: labels.csv unchanged" $?
run "init data --force" 0 init data --per-class 2 --force "$D"
run "init into a file" 1 init data "$D/labels.csv"
has "init into a file" "exists and is not a folder" "$err"
mkdir "$tmp/empty"
run "init model into an empty folder" 0 init model --preset tiny "$tmp/empty"

# ---- a model with a NaN weight: refused naming the tensor, loaded with the flag that allows it
cp -r "$M" "$tmp/nan-model"
python3 - "$tmp/nan-model/model.safetensors" <<'PY' || check "a NaN written into a copy" 1
import json, struct, sys
path = sys.argv[1]
with open(path, "r+b") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    header = json.loads(f.read(n))
    name = "vision_model.encoder.layers.1.mlp.fc2.weight"
    f.seek(8 + n + header[name]["data_offsets"][0] + 4 * 5)
    f.write(struct.pack("<f", float("nan")))
PY
run "info: a NaN weight" 1 info "$tmp/nan-model"
has "info: a NaN weight" "vision_model.encoder.layers.1.mlp.fc2.weight" "$err"
run "info --allow-nonfinite-weights" 0 info --allow-nonfinite-weights "$tmp/nan-model"
run "features: a NaN weight" 1 features --model "$tmp/nan-model" --images "$D/images" \
  --labels "$D/labels.csv" --classes NC,G3,G4,G5 --out "$tmp/nan.safetensors"
[ ! -e "$tmp/nan.safetensors" ]; check "features: nothing written from a NaN model" $?
run "features --allow-nonfinite-weights: NaN features refused" 1 features \
  --allow-nonfinite-weights --model "$tmp/nan-model" --images "$D/images" \
  --labels "$D/labels.csv" --classes NC,G3,G4,G5 --out "$tmp/nan.safetensors"
has "NaN features named" "not finite" "$err"
[ ! -e "$tmp/nan.safetensors" ]; check "features: no file of NaN features" $?

# ---- every --flag that a command's --help names is one of its options
cmds="info init tokenize preprocess embed dataset features zeroshot sample adapt predict finetune
  merge metrics bench"
for cmd in $cmds; do
  # a flag of another command named in the text ("`medvlm finetune --out`") is not this one's
  others=$(echo $cmds | tr ' ' '\n' | grep -vx "$cmd" | paste -sd'|')
  for flag in $("$cli" $cmd --help | sed -E "s/medvlm ($others) --[a-z0-9-]+//g" |
    grep -o -- '--[a-z][a-z0-9-]*' | sort -u); do
    # a value, then an option that does not exist: the parse stops there, before any work,
    # unless $flag itself is unknown
    known=0
    for sub in "$cmd" "$cmd model" "$cmd data"; do # init has two kinds
      [ "$cmd" != init ] && [ "$sub" != "$cmd" ] && continue
      [ "$cmd" = init ] && [ "$sub" = init ] && continue
      "$cli" $sub "$flag" x --zz-not-an-option </dev/null >/dev/null 2>"$tmp/e"
      grep -q -- "unknown option '$flag'" "$tmp/e" || known=1
    done
    [ "$known" = 1 ]; check "$cmd --help names $flag: it exists" $?
  done
done

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
