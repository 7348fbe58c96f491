#!/usr/bin/env bash
# Inputs that are not what they should be are refused with a message that says what they are:
# a FIFO given as a prompts, labels, features, tokenizer or image file (never a hang), a model
# folder whose files are FIFOs or folders, an image folder that is a file, a table row naming an
# image outside the image folder, a table with a header and no rows.
set -u
cli=${MEDVLM_CLI:?run through ctest}
src=${MEDVLM_SOURCE_DIR:?run through ctest}
. "$src/tests/cli/harness.sh"
E=$src/examples/sicapv2_single.json
C=NC,G3,G4,G5
"$cli" init model --preset tiny --seed 3 "$tmp/model" >/dev/null; check "init model" $?
"$cli" init data --per-class 3 --size 48 --seed 5 "$tmp/data" >/dev/null; check "init data" $?
I=$tmp/data/images L=$tmp/data/labels.csv M=$tmp/model

# ---- FIFOs: refused before open() (which would wait for a writer forever)
mkfifo "$tmp/fifo"
run_t() { # run_t NAME ARGS...: exit 1 with "FILE: is a FIFO"
  local name=$1; shift
  timeout 20 "$cli" "$@" >"$out" 2>"$err"; local rc=$?
  [ "$rc" = 1 ]; check "$name (exit $rc, want 1)" $?
  has "$name" "fifo: is a FIFO, expected a regular file" "$err"
}
run_t "--prompts FIFO" zeroshot --model "$M" --prompts "$tmp/fifo" --images "$I" --labels "$L"
run_t "--labels FIFO" zeroshot --model "$M" --prompts "$E" --images "$I" --labels "$tmp/fifo"
run_t "--features FIFO" zeroshot --model "$M" --prompts "$E" --features "$tmp/fifo"
run_t "tokenize --file FIFO" tokenize --model "$M" --file "$tmp/fifo"
run_t "preprocess FIFO image" preprocess --model "$M" --out "$tmp/p.safetensors" "$tmp/fifo"
cp -r "$I" "$tmp/imgs"
first=$(ls "$tmp/imgs" | head -1)
rm "$tmp/imgs/$first" && mkfifo "$tmp/imgs/$first"
timeout 20 "$cli" features --model "$M" --images "$tmp/imgs" --labels "$L" --classes $C \
  --out "$tmp/f.safetensors" >"$out" 2>"$err"
check "FIFO in the image folder (exit $?)" $([ $? = 1 ] && echo 0 || echo 1)
has "FIFO image" "image $tmp/imgs/$first: is a FIFO, expected an image file" "$err"
hasnt "FIFO image" "missing" "$err"

# ---- a model folder whose files are FIFOs or folders: named as such, not "missing"
for f in config.json model.safetensors tokenizer.json; do
  rm -rf "$tmp/m2" && cp -r "$M" "$tmp/m2" && rm "$tmp/m2/$f" && mkfifo "$tmp/m2/$f"
  timeout 20 "$cli" tokenize --model "$tmp/m2" "a photo" >/dev/null 2>"$err"
  timeout 20 "$cli" info "$tmp/m2" >/dev/null 2>>"$err"
  has "model folder $f FIFO" "m2/$f: is a FIFO, expected a regular file" "$err"
  hasnt "model folder $f FIFO" "missing" "$err"
done
rm -rf "$tmp/m2" && cp -r "$M" "$tmp/m2" && rm "$tmp/m2/config.json" && mkdir "$tmp/m2/config.json"
run "config.json a folder" 1 info "$tmp/m2"
has "config.json a folder" "m2/config.json: is a directory, expected a regular file" "$err"

# ---- the image folder of a table is a file: one message, not one per image
run "--images a file" 1 features --model "$M" --images "$L" --labels "$L" --classes $C \
  --out "$tmp/f.safetensors"
has "--images a file" "image folder $L is a file, not a folder" "$err"
hasnt "--images a file" "missing image" "$err"

# ---- a table row naming an image outside the image folder (it exists)
cp "$L" "$tmp/out.csv"
echo "$I/$first,0,1,0,0" >>"$tmp/out.csv"
run "absolute image path" 1 features --model "$M" --images "$I" --labels "$tmp/out.csv" \
  --classes $C --out "$tmp/f.safetensors"
has "absolute image path" "line 14: image '$I/$first' is outside the image root $I (an absolute path)" "$err"
hasnt "absolute image path" "do not exist" "$err"
cp "$L" "$tmp/up.csv"
echo "../images/$first,0,1,0,0" >>"$tmp/up.csv"
run "image path with .." 1 features --model "$M" --images "$I" --labels "$tmp/up.csv" \
  --classes $C --out "$tmp/f.safetensors"
has "image path with .." "image '../images/$first' is outside the image root $I (its '..' leave the folder)" "$err"

# ---- a table with a header and no rows
head -1 "$L" >"$tmp/hdr.csv"
run "header-only table" 1 features --model "$M" --images "$I" --labels "$tmp/hdr.csv" \
  --classes $C --out "$tmp/f.safetensors"
has "header-only table" "hdr.csv: the table has a header but no rows" "$err"
# ---- an image name that is not UTF-8 (byte 0xE9, Latin-1): refused before the work, named;
# written raw it made a safetensors header Python's safetensors and json cannot read
cp -r "$I" "$tmp/latin"
cp "$I/$first" "$tmp/latin/caf"$'\xe9'".jpg"
{ cat "$L"; printf 'caf\xe9.jpg,0,1,0,0\n'; } >"$tmp/latin.csv"
run "non-UTF-8 image name" 1 features --model "$M" --images "$tmp/latin" --labels "$tmp/latin.csv" \
  --classes $C --out "$tmp/latin.safetensors"
has "non-UTF-8 image name" "image 12, 'caf[\\]xE9.jpg', has a name that is not valid UTF-8 (byte 0xE9 at offset 3)" "$err"
[ ! -e "$tmp/latin.safetensors" ]; check "non-UTF-8 image name: no file written" $?
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
