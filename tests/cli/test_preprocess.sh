#!/usr/bin/env bash
# test_preprocess.sh - `medvlm preprocess`: printed lines, exit codes, error messages, and the
# written tensors byte for byte against the golden set's CLIPImageProcessor output (crop.*,
# nocrop.* are exact).
set -u
cli=${MEDVLM_CLI:?MEDVLM_CLI not set}
golden=${MEDVLM_GOLDEN:-${MEDVLM_GOLDEN_DEFAULT:-}}
if [ -z "$golden" ] || [ ! -f "$golden/manifest.json" ]; then
  echo "FAIL: golden folder not found ('$golden'); set MEDVLM_GOLDEN" >&2; exit 1
fi
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
passed=0 failed=0
ok() { passed=$((passed + 1)); }
bad() { failed=$((failed + 1)); echo "FAIL: $*" >&2; }
expect() { if eval "$1"; then ok; else bad "$2"; fi; }

# "start length" of tensor $2 in safetensors file $1 (absolute byte offset)
tensor_range() {
  local f=$1 name=$2 n hdr spec a b
  n=$(od -A n -t u8 -N 8 "$f" | tr -d ' ')
  hdr=$(head -c $((8 + n)) "$f" | tail -c "$n")
  spec=$(printf '%s' "$hdr" | grep -o "\"$name\" *: *{[^}]*}")
  a=$(printf '%s' "$spec" | sed -n 's/.*"data_offsets" *: *\[ *\([0-9]*\) *, *\([0-9]*\) *\].*/\1/p')
  b=$(printf '%s' "$spec" | sed -n 's/.*"data_offsets" *: *\[ *\([0-9]*\) *, *\([0-9]*\) *\].*/\2/p')
  [ -n "$a" ] && [ -n "$b" ] && echo "$((8 + n + a)) $((b - a))"
}
tensor_bytes() { # file name -> bytes on stdout; a missing tensor prints a marker, never ""
  local r; r=$(tensor_range "$1" "$2")
  if [ -z "$r" ]; then echo "missing tensor $2 in $1"; return 1; fi
  set -- "$1" $r
  tail -c +$(($2 + 1)) "$1" | head -c "$3"
}
same_tensor() { # file1 name1 file2 name2: equal bytes, both present, not empty
  local r1 r2; r1=$(tensor_range "$1" "$2"); r2=$(tensor_range "$3" "$4")
  [ -n "$r1" ] && [ -n "$r2" ] && [ "${r1#* }" = "${r2#* }" ] && [ "${r1#* }" -gt 0 ] &&
    cmp -s <(tensor_bytes "$1" "$2") <(tensor_bytes "$3" "$4")
}

mapfile -t imgs < <(sed -n 's/.*"file": *"\([^"]*\)".*/\1/p' "$golden/manifest.json")
n=${#imgs[@]}
paths=(); for f in "${imgs[@]}"; do paths+=("$golden/images/$f"); done
expect "[ $n -gt 0 ]" "manifest lists images"

# hf with the centre crop: one line per image, summary, tensors == expected crop.i
out=$("$cli" preprocess --model "$golden/model" --out "$work/p.safetensors" --png "$work/view" "${paths[@]}" 2>"$work/err")
rc=$?
expect "[ $rc -eq 0 ]" "hf exit $rc: $(cat "$work/err")"
S=$(sed -n 's/.*"crop_size": *\([0-9]*\).*/\1/p' "$golden/model/preprocessor_config.json" | head -1)
[ -z "$S" ] && S=224
expect "[ \"\$(printf '%s\n' \"\$out\" | head -1)\" = \"0	${paths[0]}	3x${S}x${S}\" ]" "first line: $(printf '%s\n' "$out" | head -1)"
expect "printf '%s\n' \"\$out\" | tail -1 | grep -q \"^wrote $n tensors (hf, centre crop) to $work/p.safetensors\$\"" "summary: $(printf '%s\n' "$out" | tail -1)"
expect "[ \$(printf '%s\n' \"\$out\" | wc -l) -eq $((n + 1)) ]" "line count"
for ((i = 0; i < n; i++)); do
  if same_tensor "$work/p.safetensors" "pixels.$i" "$golden/expected/pixels.safetensors" "crop.$i"; then ok
  else bad "pixels.$i differs from expected crop.$i"; fi
  expect "[ -s \"$work/view/$i.png\" ] && [ \"\$(head -c 4 \"$work/view/$i.png\" | tail -c 3)\" = PNG ]" "view/$i.png"
done
expect "grep -aq '\"pipeline\":\"hf\"' \"$work/p.safetensors\"" "pipeline metadata"
expect "grep -aqF '\"image.0\":\"${paths[0]}\"' \"$work/p.safetensors\"" "image name metadata"
# the view PNG decodes back through the same tool (it is a valid PNG)
expect "\"$cli\" preprocess --model \"$golden/model\" --out \"$work/v.safetensors\" \"$work/view/0.png\" >/dev/null" "view png readable"

# hf without the crop: each image its own size == expected nocrop.i
out=$("$cli" preprocess --model "$golden/model" --no-center-crop --out "$work/n.safetensors" "${paths[@]}")
expect "[ $? -eq 0 ]" "no-crop exit"
for ((i = 0; i < n; i++)); do
  if same_tensor "$work/n.safetensors" "pixels.$i" "$golden/expected/pixels.safetensors" "nocrop.$i"; then ok
  else bad "no-crop pixels.$i differs from expected nocrop.$i"; fi
done
expect "printf '%s\n' \"\$out\" | tail -1 | grep -q '(hf, no crop)'" "no-crop summary"

# tutorial: shape S x S, summary names the variant
out=$("$cli" preprocess --model "$golden/model" --preprocess tutorial --no-antialias --size 64 --threads 1 --out "$work/t.safetensors" "${paths[0]}")
expect "[ $? -eq 0 ]" "tutorial exit"
expect "printf '%s\n' \"\$out\" | head -1 | grep -q '3x64x64\$'" "tutorial shape: $out"
expect "printf '%s\n' \"\$out\" | tail -1 | grep -q '(tutorial, no antialias)'" "tutorial summary"
expect "[ \"\$(tensor_range \"$work/t.safetensors\" pixels.0 | cut -d' ' -f2)\" = $((3 * 64 * 64 * 4)) ]" "tutorial tensor bytes"

# errors: a text file named .jpg (exit 1, named, nothing written), usage errors (exit 2)
echo "hello" > "$work/fake.jpg"
"$cli" preprocess --model "$golden/model" --out "$work/e.safetensors" "${paths[0]}" "$work/fake.jpg" >"$work/out" 2>"$work/err"
rc=$?
expect "[ $rc -eq 1 ]" "bad image exit $rc"
expect "grep -q \"fake.jpg: not a JPEG, PNG or TIFF image\" \"$work/err\"" "bad image message: $(cat "$work/err")"
expect "[ ! -e \"$work/e.safetensors\" ]" "nothing written on failure"
"$cli" preprocess --model "$golden/model" "${paths[0]}" >/dev/null 2>"$work/err"; rc=$?
expect "[ $rc -eq 2 ] && grep -q -- '--out FILE.safetensors is required' \"$work/err\"" "missing --out ($rc)"
"$cli" preprocess --model "$golden/model" --preprocess fancy --out x "${paths[0]}" >/dev/null 2>"$work/err"; rc=$?
expect "[ $rc -eq 2 ] && grep -q -- \"--preprocess expects .*got 'fancy'\" \"$work/err\"" "bad --preprocess ($rc)"
"$cli" preprocess --model "$golden/model" --no-antialias --out x "${paths[0]}" >/dev/null 2>"$work/err"; rc=$?
expect "[ $rc -eq 2 ] && grep -q 'tutorial only' \"$work/err\"" "--no-antialias with hf ($rc)"
"$cli" preprocess --model "$work/nowhere" --out x "${paths[0]}" >/dev/null 2>"$work/err"; rc=$?
expect "[ $rc -eq 1 ] && grep -q 'nowhere: not a folder' \"$work/err\"" "missing model ($rc)"
"$cli" preprocess --help >"$work/help"; rc=$?
expect "[ $rc -eq 0 ] && grep -q '^example:' \"$work/help\"" "help with an example"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
