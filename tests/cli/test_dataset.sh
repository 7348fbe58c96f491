#!/usr/bin/env bash
# test_dataset.sh - `medvlm dataset` on the real SICAPv2 tables and class folders, and its
# error messages (one clear line naming the file and line).
set -u
cli=${MEDVLM_CLI:?set MEDVLM_CLI to the medvlm binary}
data=${MEDVLM_SHARED_DATA:?set MEDVLM_SHARED_DATA to the shared data folder}
part=$data/sicapv2-partition
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fails=0 passes=0
ok() { passes=$((passes + 1)); }
bad() { fails=$((fails + 1)); echo "FAIL: $*" >&2; }

"$cli" dataset --labels "$part/partition/Test/Train.xlsx" --classes NC,G3,G4,G5 > "$tmp/out" 2>&1 || bad "exit $?"
grep -q "^images   9959$" "$tmp/out" && ok || bad "train images: $(cat "$tmp/out")"
grep -Eq "^  NC +3773$" "$tmp/out" && grep -Eq "^  G3 +1829$" "$tmp/out" && grep -Eq "^  G4 +3641$" "$tmp/out" \
  && grep -Eq "^  G5 +716$" "$tmp/out" && ok || bad "train counts: $(cat "$tmp/out")"
"$cli" dataset --labels "$part/csv/SICAPv2_test.csv" --classes NC,G3,G4,G5 > "$tmp/out" 2>&1
grep -q "^images   2122$" "$tmp/out" && grep -Eq "^  G4 +853$" "$tmp/out" && ok || bad "test csv: $(cat "$tmp/out")"
"$cli" dataset --labels "$part/partition/Validation/Val4/Test.xlsx" --classes NC,G3,G4,G5 --list > "$tmp/out" 2>&1
[ "$(wc -l < "$tmp/out")" -eq 3513 ] && [ "$(head -1 "$tmp/out")" = 16B0006668_Block_Region_3_10_12_xini_66766_yini_77884.jpg,G5 ] \
  && ok || bad "Val4 list: $(head -2 "$tmp/out")"
"$cli" dataset --images "$data/kather2016-samples" > "$tmp/out" 2>&1
grep -q "^classes  8$" "$tmp/out" && grep -Eq "^  08_EMPTY +3$" "$tmp/out" && ok || bad "folders: $(cat "$tmp/out")"

# bad inputs
printf 'Path,NC,G3\na.jpg,1,0\nb.jpg,0,1\na.jpg,1,0\n' > "$tmp/dup.csv"
"$cli" dataset --labels "$tmp/dup.csv" --classes NC,G3 > "$tmp/o" 2> "$tmp/e"
[ $? -eq 1 ] && [ "$(wc -l < "$tmp/e")" -eq 1 ] && grep -q "dup.csv: line 4: duplicate image name 'a.jpg' (already listed at line 2)" "$tmp/e" \
  && ok || bad "duplicate: $(cat "$tmp/e")"
printf 'not a zip' > "$tmp/bad.xlsx"
"$cli" dataset --labels "$tmp/bad.xlsx" --classes NC > "$tmp/o" 2> "$tmp/e"
[ $? -eq 1 ] && grep -q "bad.xlsx: not an .xlsx file (expected a zip archive" "$tmp/e" && ok || bad "not a zip: $(cat "$tmp/e")"
"$cli" dataset --labels "$part/wsi_labels.xlsx" --classes NC > "$tmp/o" 2> "$tmp/e"
[ $? -eq 1 ] && grep -q "wsi_labels.xlsx: no image-name column" "$tmp/e" && ok || bad "no image column: $(cat "$tmp/e")"
printf 'image,label\na.jpg,NC\nb.jpg,G7\n' > "$tmp/unk.csv"
"$cli" dataset --labels "$tmp/unk.csv" --classes NC,G3 > "$tmp/o" 2> "$tmp/e"
[ $? -eq 1 ] && grep -q "unk.csv: line 3: unknown class 'G7'" "$tmp/e" && ok || bad "unknown class: $(cat "$tmp/e")"
printf 'Path,NC,G3\n17B0011996_Block_Region_5_10_15_xini_21983_yini_63887.jpg,0,1\nnot-here.jpg,1,0\n' > "$tmp/miss.csv"
"$cli" dataset --labels "$tmp/miss.csv" --classes NC,G3 --images "$data/sicapv2-patches/images" --check-files > "$tmp/o" 2> "$tmp/e"
[ $? -eq 1 ] && grep -q "missing image: .*not-here.jpg" "$tmp/e" && grep -q "1 of the 2 listed images do not exist" "$tmp/e" \
  && ok || bad "missing: $(cat "$tmp/e")"
"$cli" dataset --labels "$tmp/miss.csv" --classes NC,G3 --images "$data/sicapv2-patches/images" --skip-missing > "$tmp/o" 2> /dev/null
grep -q "^images   1$" "$tmp/o" && grep -q "^missing  1 images (dropped)$" "$tmp/o" && ok || bad "skip missing: $(cat "$tmp/o")"
"$cli" dataset > "$tmp/o" 2> "$tmp/e"
[ $? -eq 2 ] && grep -q "give --labels TABLE, --images DIR, or both" "$tmp/e" && ok || bad "usage"

echo "$passes passed, $fails failed"
[ $fails -eq 0 ]
