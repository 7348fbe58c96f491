#!/usr/bin/env bash
# End to end on generated data: init model + data -> features -> zeroshot -> metrics, checking
# the printed numbers against the predictions file; then a feature extraction killed with
# SIGKILL midway and resumed must give a file identical to an uninterrupted run.
set -u
cli=${MEDVLM_CLI:?run through ctest}
src=${MEDVLM_SOURCE_DIR:?run through ctest}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
pass=0 fail=0
check() { if [ "$2" = 0 ]; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL $1" >&2; fi; }

"$cli" init model --preset tiny --seed 3 "$work/model" >/dev/null; check "init model" $?
"$cli" init data --per-class 12 --size 96 --seed 5 "$work/data" >/dev/null; check "init data" $?
"$cli" features --model "$work/model" --images "$work/data/images" --labels "$work/data/labels.csv" \
  --classes NC,G3,G4,G5 --batch-size 8 --out "$work/feats.safetensors" > "$work/features.txt"
check "features" $?
grep -q "48 images x 32 dims" "$work/features.txt"; check "features count printed" $?
grep -q "NC=12 G3=12 G4=12 G5=12" "$work/features.txt"; check "class counts printed" $?
[ ! -e "$work/feats.safetensors.partial" ]; check "resume log removed after success" $?

"$cli" zeroshot --model "$work/model" --prompts "$src/examples/sicapv2_ensemble.json" \
  --features "$work/feats.safetensors" --json "$work/zs.json" --predictions "$work/pred.csv" \
  --save-prototypes "$work/protos.safetensors" > "$work/zs.txt"
check "zeroshot" $?
grep -q "zero-shot, 48 images, 4 classes, 16 prompts (ensemble)" "$work/zs.txt"; check "zeroshot header" $?
# accuracy and balanced accuracy recomputed from the predictions file must equal the printed ones
read -r acc bacc < <(awk -F, 'NR > 1 { n++; t[$2]++; if ($2 == $3) { c++; h[$2]++ } }
  END { s = 0; k = 0; for (x in t) { s += h[x] / t[x]; k++ }; printf "%.2f %.2f\n", 100 * c / n, 100 * s / k }' "$work/pred.csv")
grep -Eq "^accuracy +$acc %" "$work/zs.txt"; check "printed accuracy = predictions ($acc)" $?
grep -Eq "^balanced accuracy +$bacc %" "$work/zs.txt"; check "printed balanced accuracy = predictions ($bacc)" $?
[ "$(($(wc -l < "$work/pred.csv") - 1))" = 48 ]; check "one prediction row per image" $?
grep -q '"balanced_accuracy"' "$work/zs.json" && grep -q '"confusion_matrix"' "$work/zs.json"; check "metrics json" $?
# the confusion matrix rows sum to the class counts (12 each)
awk '/^confusion matrix/ { on = 1; getline; next } on && NF == 5 { s = $2 + $3 + $4 + $5; if (s != 12) bad = 1; rows++ } END { exit !(rows == 4 && !bad) }' "$work/zs.txt"
check "confusion matrix rows sum to the class sizes" $?
# zero-shot straight from the dataset gives the same numbers as from the features file
"$cli" zeroshot --model "$work/model" --prompts "$src/examples/sicapv2_ensemble.json" \
  --images "$work/data/images" --labels "$work/data/labels.csv" --batch-size 8 > "$work/zs2.txt"
check "zeroshot on a dataset" $?
diff <(tail -n +2 "$work/zs.txt") <(tail -n +2 "$work/zs2.txt") >/dev/null; check "dataset = features file results" $?

# ---- adapters with the zero-shot classifier from the prompts and the model (the tutorial's
# form): the same adapter file as from the prototypes zeroshot saved; the prompts' classes are
# matched to the features' by name
E=$src/examples/sicapv2_ensemble.json
"$cli" adapt --method clap --train "$work/feats.safetensors" --test "$work/feats.safetensors" \
  --prompts "$E" --model "$work/model" --shots 4 --seed 2 --out "$work/a1.safetensors" > "$work/a1.txt"
check "adapt --prompts --model" $?
grep -q "^adapt: 4-shot, 16 training images (of 48 in .*, 48 test images, 4 classes, D 32, model .*/model\$" "$work/a1.txt"
check "adapt header, with the model" $?
"$cli" adapt --method clap --train "$work/feats.safetensors" --test "$work/feats.safetensors" \
  --prototypes "$work/protos.safetensors" --shots 4 --seed 2 --out "$work/a2.safetensors" >/dev/null
cmp -s "$work/a1.safetensors" "$work/a2.safetensors"; check "--prompts --model = --prototypes" $?
# the images adapt trained on (its --json) are those `medvlm sample` draws from the table
"$cli" adapt --methods lp,clap --train "$work/feats.safetensors" --test "$work/feats.safetensors" \
  --prompts "$E" --model "$work/model" --shots 3 --seeds 1,2 --json "$work/a.json" >/dev/null
check "adapt --methods --json" $?
for seed in 1 2; do
  "$cli" sample --labels "$work/data/labels.csv" --classes NC,G3,G4,G5 --shots 3 --seed $seed > "$work/s$seed.txt"
  # the seed-th "images" list of the JSON (seeds in the order given), one name per line
  awk -v k=$seed '/"images":/ && ++i == k { sub(/^[^[]*\[/, ""); sub(/\].*$/, "")
    n = split($0, v, /", *"/); for (j = 1; j <= n; j++) { gsub(/"/, "", v[j]); print v[j] } }' \
    "$work/a.json" > "$work/j$seed.txt"
  [ -s "$work/s$seed.txt" ] && cmp -s "$work/s$seed.txt" "$work/j$seed.txt"
  check "seed $seed: adapt's training images = medvlm sample's" $?
  "$cli" sample --features "$work/feats.safetensors" --shots 3 --seed $seed > "$work/f$seed.txt"
  cmp -s "$work/s$seed.txt" "$work/f$seed.txt"; check "seed $seed: sample on the features = on the table" $?
done
printf '{"classes": ["G5", "G4", "G3", "NC"], "descriptions": {"NC": ["non-cancerous"],
  "G3": ["Gleason grade 3"], "G4": ["Gleason grade 4"], "G5": ["Gleason grade 5"]}}' > "$work/rev.json"
for p in rev "$src/examples/sicapv2_single"; do
  "$cli" adapt --method zslp --train "$work/feats.safetensors" --test "$work/feats.safetensors" \
    --prompts "${p/#rev/$work/rev}.json" --model "$work/model" --shots 4 --out "$work/z_${p##*/}.safetensors" >/dev/null
done
cmp -s "$work/z_rev.safetensors" "$work/z_sicapv2_single.safetensors"; check "prompts' class order does not matter" $?
printf '{"classes": ["NC", "G3", "G4"], "descriptions": {"NC": ["a"], "G3": ["b"], "G4": ["c"]}}' > "$work/p3.json"
"$cli" adapt --method clap --train "$work/feats.safetensors" --test "$work/feats.safetensors" \
  --prompts "$work/p3.json" --model "$work/model" --shots 4 > /dev/null 2> "$work/p3.err"
[ $? = 1 ] && grep -q "class 'G5' of .*feats.safetensors has no prompts in .*p3.json" "$work/p3.err"
check "a class without prompts named" $?
./test_featfile --make "$work/ff" > /dev/null && "$cli" adapt --method clap \
  --train "$work/ff/train.safetensors" --test "$work/ff/test.safetensors" --prompts "$E" \
  --model "$work/model" --shots 4 > /dev/null 2> "$work/dim.err"
[ $? = 1 ] && grep -q "has 16-dimensional features but .*model embeds the prompts of .* in 32 dimensions: the features come from a different model" "$work/dim.err"
check "features from another model: dimension mismatch named" $?

# ---- embeddings of another model with the same width: the files record which model made
# them (its weights' fingerprint), and zeroshot, adapt and predict refuse to mix them
"$cli" init model --preset tiny --seed 4 "$work/model4" >/dev/null
"$cli" features --model "$work/model4" --images "$work/data/images" --labels "$work/data/labels.csv" \
  --classes NC,G3,G4,G5 --out "$work/feats4.safetensors" >/dev/null; check "features, second model" $?
other="come from the model .*model4 (weights [0-9a-f]\{16\}) but .* from .*model (weights [0-9a-f]\{16\}): embeddings of different models do not compare"
"$cli" zeroshot --model "$work/model" --prompts "$E" --features "$work/feats4.safetensors" > /dev/null 2> "$work/m.err"
[ $? = 1 ] && grep -q "the features in .*feats4.safetensors $other" "$work/m.err"; check "zeroshot: features of another model" $?
"$cli" adapt --method clap --train "$work/feats4.safetensors" --test "$work/feats4.safetensors" \
  --prototypes "$work/protos.safetensors" --shots 4 > /dev/null 2> "$work/m.err"
[ $? = 1 ] && grep -q "the features in .*feats4.safetensors $other" "$work/m.err"; check "adapt: prototypes of another model" $?
"$cli" adapt --method clap --train "$work/feats4.safetensors" --test "$work/feats.safetensors" \
  --prompts "$E" --model "$work/model4" --shots 4 > /dev/null 2> "$work/m.err"
[ $? = 1 ] && grep -q "the features in .*feats4.safetensors $other" "$work/m.err"; check "adapt: test features of another model" $?
"$cli" predict --adapter "$work/a1.safetensors" --features "$work/feats4.safetensors" > /dev/null 2> "$work/m.err"
[ $? = 1 ] && grep -q "the features in .*feats4.safetensors $other" "$work/m.err"; check "predict: features of another model" $?
"$cli" predict --adapter "$work/a1.safetensors" --features "$work/feats.safetensors" > "$work/p.txt"
check "predict: features of the adapter's model" $?
grep -q "^predict: clap adapter (4-shot, 4 classes, D 32, model .*/model) on 48 images" "$work/p.txt"
check "predict names the adapter's model" $?

# ---- a listed image that does not exist: named, nothing written, unless --skip-missing
mv "$work/data/images/synth_G4_00003.jpg" "$work/gone.jpg"
"$cli" features --model "$work/model" --images "$work/data/images" --labels "$work/data/labels.csv" \
  --classes NC,G3,G4,G5 --out "$work/miss.safetensors" > /dev/null 2> "$work/miss.err"
[ $? = 1 ] && grep -q "synth_G4_00003.jpg" "$work/miss.err" && [ ! -e "$work/miss.safetensors" ]
check "missing image named, exit 1, nothing written" $?
"$cli" features --model "$work/model" --images "$work/data/images" --labels "$work/data/labels.csv" \
  --classes NC,G3,G4,G5 --skip-missing --out "$work/miss.safetensors" > "$work/miss.txt" 2>/dev/null
grep -q "47 images x 32 dims" "$work/miss.txt"; check "--skip-missing leaves it out" $?
# ---- an image that does not decode: named, nothing written, unless --skip-bad
printf 'not an image' > "$work/data/images/synth_G4_00003.jpg"
"$cli" features --model "$work/model" --images "$work/data/images" --labels "$work/data/labels.csv" \
  --classes NC,G3,G4,G5 --out "$work/bad.safetensors" > /dev/null 2> "$work/bad.err"
[ $? = 1 ] && grep -q "synth_G4_00003.jpg" "$work/bad.err" && [ ! -e "$work/bad.safetensors" ]
check "undecodable image named, exit 1, nothing written" $?
"$cli" features --model "$work/model" --images "$work/data/images" --labels "$work/data/labels.csv" \
  --classes NC,G3,G4,G5 --skip-bad --out "$work/bad.safetensors" > "$work/bad.txt" 2>/dev/null
grep -q "47 images x 32 dims, 1 unreadable images left out" "$work/bad.txt"; check "--skip-bad leaves it out" $?
mv "$work/gone.jpg" "$work/data/images/synth_G4_00003.jpg"

# ---- resume after SIGKILL
"$cli" init data --per-class 40 --size 224 --seed 9 "$work/big" >/dev/null
args=(features --model "$work/model" --images "$work/big/images" --labels "$work/big/labels.csv"
      --classes NC,G3,G4,G5 --batch-size 4 --threads 1)
"$cli" "${args[@]}" --out "$work/ref.safetensors" >/dev/null; check "uninterrupted run" $?
"$cli" "${args[@]}" --out "$work/run.safetensors" >/dev/null 2>&1 &
pid=$!
# wait until at least two batches are in the log, then kill without warning
for _ in $(seq 1 400); do
  sz=$(stat -c %s "$work/run.safetensors.partial" 2>/dev/null || echo 0)
  [ "$sz" -gt 1500 ] && break
  sleep 0.01
done
kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
killed=1; [ -e "$work/run.safetensors" ] && killed=0
[ $killed = 1 ] && [ -e "$work/run.safetensors.partial" ]; check "killed midway: no output, a resume log" $?
"$cli" "${args[@]}" --out "$work/run.safetensors" --resume > "$work/resume.txt"; check "resume" $?
grep -q "batches resumed" "$work/resume.txt"; check "resume used the log" $?
cmp -s "$work/ref.safetensors" "$work/run.safetensors"; check "resumed file identical to an uninterrupted run" $?
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
