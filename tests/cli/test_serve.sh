#!/usr/bin/env bash
# `medvlm serve` on a generated model and data set: every endpoint answered with curl on a
# free loopback port, the page and the OpenAPI document, zero-shot probabilities equal to
# `medvlm zeroshot`'s, and every bad input of the issue (non-image, truncated JPEG, a PNG
# declaring 20000 x 20000 pixels, empty body, missing field, tile out of range, a path in the
# URL, a missing token, a body over the limit, requests over the in-flight limit): a 4xx/503
# JSON answer each, with the server still serving after.
set -u
cli=${MEDVLM_CLI:?run through ctest}
. "$(dirname "$0")/harness.sh" # check, run, has, hasnt; $tmp, $out, $err
. "$(dirname "$0")/serve_harness.sh" # serve_start, serve_fixtures; servers stopped on exit

if [ "${MEDVLM_HAVE_MHD:-ON}" != ON ]; then
  run "serve without libmicrohttpd" 1 serve --model x --prompts y
  has "says so" "built without libmicrohttpd" "$err"
  echo "$pass passed, $fail failed (serve itself skipped: built without libmicrohttpd)"
  [ "$fail" = 0 ] && exit 77 || exit 1
fi
command -v curl >/dev/null || { echo "FAIL curl is needed (Makefile DEB_PACKAGES)"; echo "0 passed, 1 failed"; exit 1; }

"$cli" init model --preset tiny "$tmp/model" >/dev/null &&
  "$cli" init data --per-class 3 --size 64 "$tmp/data" >/dev/null &&
  "$cli" features --model "$tmp/model" --images "$tmp/data/images" --labels "$tmp/data/labels.csv" \
    --classes NC,G3,G4,G5 --out "$tmp/feats.safetensors" >/dev/null ||
  { echo "FAIL fixtures"; echo "0 passed, 1 failed"; exit 1; }
cat >"$tmp/prompts.json" <<'JSON'
{"classes": ["NC", "G3", "G4", "G5"], "templates": ["a slide showing [CLS]", "an image of [CLS]"],
 "descriptions": {"NC": ["benign glands"], "G3": ["atrophic glands"], "G4": ["cribriform glands"],
                  "G5": ["isolated <cells> & \"nests\""]}}
JSON

# req NAME WANT_CODE CURL_ARGS...: the body in $tmp/body; the code must be WANT_CODE
req() {
  local name=$1 want=$2; shift 2
  local code
  code=$(curl -s -m 60 -o "$tmp/body" -w '%{http_code}' "$@")
  [ "$code" = "$want" ]; check "$name (HTTP $code, want $want)" $?
  [ "$code" = "$want" ] || { echo "--- body"; head -c 400 "$tmp/body"; echo; } >&2
}
alive() { req "$1: still serving" 200 "$url/api/info"; }
J=(-H 'Content-Type: application/json')
B=(-H 'Content-Type: application/octet-stream')

serve_start main --model "$tmp/model" --prompts "$tmp/prompts.json" --features "$tmp/feats.safetensors" \
  --images "$tmp/data/images" --workers 2
tile=$tmp/data/images/synth_G4_00001.jpg

req "info" 200 "$url/api/info"
has "info classes" '"classes":\["NC","G3","G4","G5"\]' "$tmp/body"
has "info tiles" '"tiles":12' "$tmp/body"
has "info limits" '"max_upload_bytes":16777216' "$tmp/body"
req "openapi" 200 "$url/api/openapi.json"
has "openapi" '"openapi": "3.0.3"' "$tmp/body"
hasnt "openapi without a token: no security" '"security"' "$tmp/body"
for p in /api/info /api/zeroshot /api/search/text /api/search/image '/api/tile/{index}'; do
  has "openapi documents $p" "\"$p\"" "$tmp/body"
done
req "page" 200 "$url/"
has "page" '<title>medvlm</title>' "$tmp/body"
hasnt "page fetches nothing" 'src="http' "$tmp/body"

# zero-shot: raw bytes and base64 JSON agree, and equal medvlm zeroshot's probabilities
req "zeroshot raw" 200 "${B[@]}" --data-binary @"$tile" "$url/api/zeroshot"
cp "$tmp/body" "$tmp/zs_raw.json"
has "zeroshot raw" '"classes":\["NC","G3","G4","G5"\],"probabilities":\[' "$tmp/body"
printf '{"image":"%s"}' "$(base64 -w0 "$tile")" >"$tmp/zs_req.json"
req "zeroshot json" 200 "${J[@]}" --data-binary @"$tmp/zs_req.json" "$url/api/zeroshot"
cmp -s "$tmp/body" "$tmp/zs_raw.json"; check "zeroshot: base64 JSON = raw bytes" $?
"$cli" zeroshot --model "$tmp/model" --prompts "$tmp/prompts.json" \
  --features "$tmp/feats.safetensors" --predictions "$tmp/pred.csv" >/dev/null
want=$(grep '^synth_G4_00001.jpg,' "$tmp/pred.csv" | cut -d, -f4-7)
got=$(sed 's/.*"probabilities":\[\([^]]*\)\].*/\1/' "$tmp/zs_raw.json")
awk -v a="$want" -v b="$got" 'BEGIN { n = split(a, x, ","); m = split(b, y, ",");
  if (n != 4 || m != 4) exit 1; for (i = 1; i <= 4; i++) { d = x[i] - y[i]; if (d < 0) d = -d;
  if (d > 1e-4) exit 1 } }'
check "zeroshot: the server's probabilities = medvlm zeroshot's ($got vs $want)" $?
printf '{"image":"data:image/jpeg;base64,%s","prompts":{"classes":["a","b"],"descriptions":{"a":"glands","b":"cells"}}}' \
  "$(base64 -w0 "$tile")" >"$tmp/zs_own.json"
req "zeroshot own prompts" 200 "${J[@]}" --data-binary @"$tmp/zs_own.json" "$url/api/zeroshot"
has "zeroshot own prompts" '"classes":\["a","b"\]' "$tmp/body"

# search: a tile's own features are its nearest; text search gives k results
req "search image by index" 200 "${J[@]}" -d '{"index":5,"k":3}' "$url/api/search/image"
has "search image by index" '^{"results":\[{"index":5,' "$tmp/body"
[ "$(grep -o '"index"' "$tmp/body" | wc -l)" = 3 ]; check "search image: k = 3 results" $?
req "search image upload" 200 "${B[@]}" --data-binary @"$tile" "$url/api/search/image"
has "search image upload: the tile itself first" '^{"results":\[{"index":[0-9]*,"name":"synth_G4_00001.jpg"' "$tmp/body"
req "search text" 200 "${J[@]}" -d '{"text":"cribriform glands","k":4}' "$url/api/search/text"
[ "$(grep -o '"score"' "$tmp/body" | wc -l)" = 4 ]; check "search text: 4 results" $?
req "tile" 200 "$url/api/tile/3"
[ "$(head -c 2 "$tmp/body" | od -An -tx1 | tr -d ' ')" = ffd8 ]; check "tile is a JPEG" $?

# bad input: a 4xx JSON answer each, and the server goes on
printf 'not an image at all' >"$tmp/text.txt"
head -c 300 "$tile" >"$tmp/trunc.jpg"
printf '\x89\x50\x4e\x47\x0d\x0a\x1a\x0a\x00\x00\x00\x0d\x49\x48\x44\x52\x00\x00\x4e\x20\x00\x00\x4e\x20\x08\x02\x00\x00\x00\x6c\x12\xd1\x6e' >"$tmp/huge.png"
bad() { # bad NAME CODE CURL_ARGS...
  local name=$1 code=$2; shift 2
  req "$name" "$code" "$@"
  has "$name: JSON error" '^{"error":"[^"]' "$tmp/body"
}
bad "non-image" 415 "${B[@]}" --data-binary @"$tmp/text.txt" "$url/api/zeroshot"
bad "truncated JPEG" 400 "${B[@]}" --data-binary @"$tmp/trunc.jpg" "$url/api/zeroshot"
has "truncated JPEG: says so" 'truncated JPEG' "$tmp/body"
bad "20000 x 20000 PNG" 413 "${B[@]}" --data-binary @"$tmp/huge.png" "$url/api/zeroshot"
bad "empty body" 400 -X POST "${B[@]}" "$url/api/zeroshot"
bad "empty JSON body" 400 -X POST "${J[@]}" "$url/api/search/text"
bad "not JSON" 400 "${J[@]}" -d '{"text": ' "$url/api/search/text"
bad "missing field" 400 "${J[@]}" -d '{"k":3}' "$url/api/search/text"
has "missing field: named" 'missing field \\"text\\"' "$tmp/body"
bad "missing image" 400 "${J[@]}" -d '{}' "$url/api/zeroshot"
bad "bad base64" 400 "${J[@]}" -d '{"image":"%%%"}' "$url/api/zeroshot"
bad "bad k" 400 "${J[@]}" -d '{"text":"x","k":0}' "$url/api/search/text"
bad "bad prompts" 400 "${J[@]}" --data-binary @<(printf '{"image":"%s","prompts":{"classes":["a"]}}' "$(base64 -w0 "$tile")") "$url/api/zeroshot"
bad "tile out of range" 404 "$url/api/tile/12"
bad "tile not a number" 404 "$url/api/tile/-1"
bad "index out of range" 404 "${J[@]}" -d '{"index":99}' "$url/api/search/image"
bad "path in the URL" 404 --path-as-is "$url/../../etc/passwd"
hasnt "path in the URL: no file" 'root:' "$tmp/body"
bad "path in the tile" 404 --path-as-is "$url/api/tile/../../etc/passwd"
bad "encoded path" 404 --path-as-is "$url/api/tile/..%2f..%2fetc%2fpasswd"
bad "unknown endpoint" 404 "$url/api/nothing"
bad "wrong method" 405 "$url/api/zeroshot"
head -c $((17 * 1024 * 1024)) /dev/zero >"$tmp/big.bin"
bad "body over the limit" 413 "${B[@]}" --data-binary @"$tmp/big.bin" "$url/api/zeroshot"
alive "after the bad input"
req "zeroshot after the bad input" 200 "${B[@]}" --data-binary @"$tile" "$url/api/zeroshot"
cmp -s "$tmp/body" "$tmp/zs_raw.json"; check "the same answer as before" $?
kill -0 "$pid" 2>/dev/null; check "the server is running" $?

# stops on SIGTERM with status 0
kill -TERM "$pid"; wait "$pid"; check "SIGTERM: exit 0" $?

# the token, and the in-flight limit (a slow upload holds the only slot)
serve_start token --model "$tmp/model" --prompts "$tmp/prompts.json" --token s3cret --max-requests 1
bad "no token" 401 "$url/api/info"
bad "wrong token" 401 -H 'Authorization: Bearer s3cre' "$url/api/info"
req "token" 200 -H 'Authorization: Bearer s3cret' "$url/api/info"
req "openapi with a token" 200 -H 'Authorization: Bearer s3cret' "$url/api/openapi.json"
has "openapi with a token: every operation asks for it" '"security":\[{"bearer":\[\]}\]' "$tmp/body"
has "openapi with a token: the scheme" '"bearer":{"type":"http","scheme":"bearer"}' "$tmp/body"
req "page without token" 200 "$url/"
head -c 60000 /dev/zero >"$tmp/slow.bin"
curl -s -m 20 --limit-rate 15k -o /dev/null -H 'Authorization: Bearer s3cret' "${B[@]}" \
  --data-binary @"$tmp/slow.bin" "$url/api/zeroshot" &
slow=$!
sleep 1
bad "over the in-flight limit" 503 -H 'Authorization: Bearer s3cret' "$url/api/info"
wait "$slow"
req "a slot again" 200 -H 'Authorization: Bearer s3cret' "$url/api/info"
kill -INT "$pid"; wait "$pid"; check "SIGINT: exit 0" $?

run "usage: no prompts" 2 serve --model "$tmp/model"
has "usage" "--model and --prompts are required" "$err"
run "usage: images without features" 2 serve --model "$tmp/model" --prompts "$tmp/prompts.json" --images x
run "usage: port" 2 serve --model "$tmp/model" --prompts "$tmp/prompts.json" --port 70000
run "bad bind" 1 serve --model "$tmp/model" --prompts "$tmp/prompts.json" --bind nowhere
has "bad bind" "is not an IPv4 or IPv6 address" "$err"
run "missing model" 1 serve --model "$tmp/none" --prompts "$tmp/prompts.json"

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
