#!/usr/bin/env bash
# test_tokenize.sh - `medvlm tokenize`: printed ids and BPE strings, padding, JSON, --file,
# truncation notice, errors and exit codes (0 ok, 1 failure, 2 usage).
set -u
cli=${MEDVLM_CLI:?set MEDVLM_CLI to the medvlm binary}
golden=${MEDVLM_GOLDEN:-${MEDVLM_GOLDEN_DEFAULT:-}}
if [ -z "$golden" ] || [ ! -f "$golden/manifest.json" ]; then
  echo "golden folder not found: '$golden' (set MEDVLM_GOLDEN)" >&2; exit 1
fi
model=$golden/model
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0
expect() { # NAME GOT WANT
  if [ "$2" == "$3" ]; then pass=$((pass + 1)); else
    fail=$((fail + 1)); printf 'FAIL %s\n  got:  %s\n  want: %s\n' "$1" "$2" "$3" >&2; fi
}
expect_rc() { # NAME GOT WANT
  expect "$1 (exit status)" "$2" "$3"
}

# ids of the CLIP vocabulary (identical to Hugging Face's CLIPTokenizer)
out=$("$cli" tokenize --model "$model" "Gleason grade 3"); rc=$?
expect_rc "plain" $rc 0
expect "plain ids" "$out" "49406 7166 1163 3394 274 49407"

out=$("$cli" tokenize --model "$model" --tokens "Gleason grade 3" "it’s")
expect "tokens" "$out" "49406 7166 1163 3394 274 49407
<|startoftext|> gle ason</w> grade</w> 3</w> <|endoftext|>
49406 585 728 503 338 49407
<|startoftext|> it</w> âĢ Ļ</w> s</w> <|endoftext|>"

out=$("$cli" tokenize --model "$model" --pad longest --json --tokens "a" "b c")
expect "json longest" "$out" '{"max_length":77,"pad":"longest","vocab_size":49408,"prompts":[{"text":"a","length":3,"truncated":false,"ids":[49406,320,49407,49407],"attention_mask":[1,1,1,0],"tokens":["<|startoftext|>","a</w>","<|endoftext|>","<|endoftext|>"]},{"text":"b c","length":4,"truncated":false,"ids":[49406,321,322,49407],"attention_mask":[1,1,1,1],"tokens":["<|startoftext|>","b</w>","c</w>","<|endoftext|>"]}]}'

out=$("$cli" tokenize --model "$model" --pad max --max-length 6 "a")
expect "pad max" "$out" "49406 320 49407 49407 49407 49407"

# --file: one prompt per line, TABs inside a line belong to it; truncation noticed on stderr
printf 'Gleason grade 3\nhistopathology\timage\n' > "$tmp/p.txt"
out=$("$cli" tokenize --model "$model" --file "$tmp/p.txt" --max-length 4 2> "$tmp/err"); rc=$?
expect_rc "file" $rc 0
expect "file ids" "$out" "49406 7166 1163 49407
49406 677 6005 49407"
expect "truncation notice" "$(head -1 "$tmp/err")" "medvlm tokenize: prompt 0 truncated from 6 to 4 ids"

# the vocab.json + merges.txt pair alone gives the same ids
mkdir "$tmp/vm" && cp "$model/vocab.json" "$model/merges.txt" "$tmp/vm/"
out=$("$cli" tokenize --model "$tmp/vm" "Gleason grade 3")
expect "vocab+merges" "$out" "49406 7166 1163 3394 274 49407"

# errors: one clear line, exit 1; usage errors exit 2
printf 'ok\nbad \xff here\n' > "$tmp/bad.txt"
"$cli" tokenize --model "$model" --file "$tmp/bad.txt" > /dev/null 2> "$tmp/err"; rc=$?
expect_rc "invalid UTF-8" $rc 1
expect "invalid UTF-8 message" "$(cat "$tmp/err")" \
  "medvlm: tokenize: $tmp/bad.txt:2: text: invalid UTF-8 at byte offset 4 (0xff): prompts must be UTF-8 text"
"$cli" tokenize --model "$tmp" x > /dev/null 2> "$tmp/err"; rc=$?
expect_rc "no tokenizer" $rc 1
expect "no tokenizer message" "$(cat "$tmp/err")" \
  "medvlm: tokenize: $tmp: no tokenizer: expected tokenizer.json, or vocab.json and merges.txt (a Hugging Face CLIP folder)"
"$cli" tokenize x > /dev/null 2> "$tmp/err"; rc=$?
expect_rc "no model" $rc 2
expect "no model message" "$(head -1 "$tmp/err")" "medvlm tokenize: --model DIR is required"
"$cli" tokenize --model "$model" --pad wide x > /dev/null 2> "$tmp/err"; rc=$?
expect_rc "bad pad" $rc 2
expect "bad pad message" "$(head -1 "$tmp/err")" "medvlm tokenize: --pad expects one of none/longest/max, got 'wide'"
"$cli" tokenize --model "$model" --max-length 1 x > /dev/null 2>&1; rc=$?
expect_rc "bad max length" $rc 2
"$cli" tokenize --model "$model" > /dev/null 2>&1; rc=$?
expect_rc "no prompt" $rc 2
out=$("$cli" tokenize --help); rc=$?
expect_rc "help" $rc 0
case "$out" in *"example:"*"medvlm tokenize --model"*) pass=$((pass + 1)) ;;
  *) fail=$((fail + 1)); echo "FAIL help has no example" >&2 ;; esac

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
