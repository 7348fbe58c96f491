#!/usr/bin/env bash
# test_sample.sh - `medvlm sample` prints the tutorial's few-shot subset of the real SICAPv2
# tables (names checked against a Python re-implementation of the tutorial's loader).
set -u
cli=${MEDVLM_CLI:?set MEDVLM_CLI to the medvlm binary}
data=${MEDVLM_SHARED_DATA:?set MEDVLM_SHARED_DATA to the shared data folder}
part=$data/sicapv2-partition
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fails=0 passes=0
ok() { passes=$((passes + 1)); }
bad() { fails=$((fails + 1)); echo "FAIL: $*" >&2; }

"$cli" sample --labels "$part/partition/Test/Train.xlsx" --classes NC,G3,G4,G5 --shots 16 --seed 1 \
  > "$tmp/out" 2> "$tmp/err" || bad "sample exit $?: $(cat "$tmp/err")"
[ "$(wc -l < "$tmp/out")" -eq 64 ] && ok || bad "expected 64 lines, got $(wc -l < "$tmp/out")"
[ "$(sed -n 1p "$tmp/out")" = 16B0027040_Block_Region_10_3_5_xini_33710_yini_19060.jpg ] && ok || bad "line 1: $(sed -n 1p "$tmp/out")"
[ "$(sed -n 2p "$tmp/out")" = 16B0027040_Block_Region_1_13_14_xini_31977_yini_120779.jpg ] && ok || bad "line 2"
[ "$(sed -n 3p "$tmp/out")" = 18B0005478J_Block_Region_14_1_0_xini_43363_yini_6600.jpg ] && ok || bad "line 3"
[ "$(sed -n 17p "$tmp/out")" = 18B0002932D_Block_Region_10_12_7_xini_16713_yini_69825.jpg ] && ok || bad "line 17"

# the CSV copy gives the same subset
"$cli" sample --labels "$part/csv/SICAPv2_train.csv" --classes NC,G3,G4,G5 --shots 16 --seed 1 > "$tmp/csv" \
  && cmp -s "$tmp/out" "$tmp/csv" && ok || bad "csv copy differs from the xlsx"

# with labels, K=1 seed 0
"$cli" sample --labels "$part/partition/Test/Train.xlsx" --classes NC,G3,G4,G5 --shots 1 --seed 0 --with-labels > "$tmp/k1"
printf '%s\n' 18B0005478I_Block_Region_2_14_11_xini_19020_yini_149166.jpg,NC \
  17B0034179_Block_Region_3_4_3_xini_8835_yini_35612.jpg,G3 \
  18B0002930B_Block_Region_4_4_19_xini_25625_yini_7750.jpg,G4 \
  17B0024162_Block_Region_4_14_8_xini_24129_yini_50778.jpg,G5 > "$tmp/k1.want"
cmp -s "$tmp/k1" "$tmp/k1.want" && ok || bad "K=1 seed 0 --with-labels: $(cat "$tmp/k1")"

# errors: one clear line, exit 1 / 2
"$cli" sample --labels "$part/partition/Test/Train.xlsx" --classes NC,G3,G4,G5 --shots 800 --seed 1 > "$tmp/o" 2> "$tmp/e"
rc=$?
[ $rc -eq 1 ] && grep -q "class 3 has 716 images, fewer than the 800 shots" "$tmp/e" && [ ! -s "$tmp/o" ] && ok || bad "too many shots: rc $rc $(cat "$tmp/e")"
"$cli" sample --labels "$part/partition/Test/Train.xlsx" --classes NC,G3,G4,G5 --shots 800 --allow-fewer > "$tmp/o" 2>&1
[ "$(wc -l < "$tmp/o")" -eq 3116 ] && ok || bad "--allow-fewer: $(wc -l < "$tmp/o") lines"
"$cli" sample --labels "$part/partition/Test/Train.xlsx" --classes NC,G3,G9 --shots 1 > "$tmp/o" 2> "$tmp/e"
rc=$?
[ $rc -eq 1 ] && grep -q "Train.xlsx: unknown class 'G9'" "$tmp/e" && ok || bad "unknown class: rc $rc $(cat "$tmp/e")"
"$cli" sample --labels "$part/partition/Test/Train.xlsx" --shots 0 > "$tmp/o" 2> "$tmp/e"
rc=$?
[ $rc -eq 2 ] && grep -q -- "--shots expects an integer >= 1, got '0'" "$tmp/e" && ok || bad "shots 0: rc $rc"
"$cli" sample --classes NC --shots 1 > "$tmp/o" 2> "$tmp/e"
[ $? -eq 2 ] && grep -q -- "give --labels TABLE or --features FEATS (one of them)" "$tmp/e" && ok || bad "no labels"
"$cli" sample --labels "$part/partition/Test/Train.xlsx" --features "$tmp/f.safetensors" --shots 1 > "$tmp/o" 2> "$tmp/e"
[ $? -eq 2 ] && grep -q -- "give --labels TABLE or --features FEATS (one of them)" "$tmp/e" && ok || bad "labels and features"
"$cli" sample --features "$tmp/f.safetensors" --classes NC --shots 1 > "$tmp/o" 2> "$tmp/e"
[ $? -eq 2 ] && grep -q -- "a features file carries its classes" "$tmp/e" && ok || bad "features with --classes"
printf 'Path,NC,G3\na.jpg,1,0\nb.jpg,0,1,1\n' > "$tmp/rag.csv"
"$cli" sample --labels "$tmp/rag.csv" --classes NC,G3 --shots 1 > "$tmp/o" 2> "$tmp/e"
[ $? -eq 1 ] && grep -q "rag.csv: line 3: expected 3 fields as in the header, got 4" "$tmp/e" && ok || bad "ragged: $(cat "$tmp/e")"
"$cli" sample --help | grep -q "random.seed(S)" && ok || bad "--help"

echo "$passes passed, $fails failed"
[ $fails -eq 0 ]
