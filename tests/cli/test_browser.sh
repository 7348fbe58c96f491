#!/usr/bin/env bash
# The page of `medvlm serve` in a real browser: Debian's headless Chromium driven by selenium
# (from PyPI, in a virtual environment under the build folder) through Debian's chromedriver
# (tests/browser/page_test.py). The server runs on a free loopback port with a generated model
# and the real SICAPv2 tiles of ../shared/data/; the page uploads one of them and its class
# probabilities must equal `medvlm zeroshot --predictions`; a text search must show the tiles
# nearest to the query's `medvlm embed` embedding, in order, with their thumbnails; a screenshot
# is taken. The HTML report of `medvlm zeroshot --report` on the same tiles is rendered to PNG
# (tests/browser/render_report.py), which must not be blank. Chromium is installed by `make browser-deps` (.ci/run does it): without it, or
# without PyPI, the test is skipped with a line saying so, except in CI (CI=true), where it
# fails.
set -u
cli=${MEDVLM_CLI:?run through ctest}
. "$(dirname "$0")/harness.sh" # check, run, has, hasnt; $tmp, $out, $err
. "$(dirname "$0")/serve_harness.sh" # serve_start, serve_fixtures; servers stopped on exit
src=${MEDVLM_SOURCE_DIR:?run through ctest}
data=${MEDVLM_SHARED_DATA:?run through ctest}
venv=${MEDVLM_BINARY_DIR:?run through ctest}/venv-browser
SELENIUM=selenium==4.27.1

# missing WHAT: a skip outside CI, a failure in CI
missing() {
  if [ "${CI:-}" = true ]; then
    echo "FAIL $1 (CI=true: this test must run; .ci/run installs what it needs)"
    echo "0 passed, 1 failed"
    exit 1
  fi
  echo "SKIP browser test: $1"
  exit 77
}
[ "${MEDVLM_HAVE_MHD:-ON}" = ON ] || missing "medvlm was built without libmicrohttpd"
export CHROMIUM=${CHROMIUM:-/usr/bin/chromium} CHROMEDRIVER=${CHROMEDRIVER:-/usr/bin/chromedriver}
[ -x "$CHROMIUM" ] && [ -x "$CHROMEDRIVER" ] ||
  missing "no Chromium: make browser-deps (apt-get install chromium chromium-driver)"
command -v curl >/dev/null || missing "no curl"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import selenium' 2>/dev/null; then
  rm -rf "$venv"
  python3 -m venv "$venv" >"$tmp/venv.log" 2>&1 &&
    timeout 300 "$venv/bin/pip" install -q "$SELENIUM" >>"$tmp/venv.log" 2>&1 ||
    { cat "$tmp/venv.log" >&2; rm -rf "$venv"; missing "could not install $SELENIUM from PyPI into $venv"; }
fi

# fixtures: a tiny generated model; the real tiles with their SICAPv2 labels
tiles=$data/sicapv2-patches/images
echo "image,label" >"$tmp/labels.csv"
for f in "$tiles"/*.jpg; do
  b=$(basename "$f")
  awk -F, -v b="$b" '$1 == b { for (i = 2; i <= 5; i++) if ($i == 1) { print b "," (i == 2 ? "NC" : i == 3 ? "G3" : i == 4 ? "G4" : "G5"); exit } }' \
    "$data/sicapv2-partition/csv/SICAPv2_train.csv" "$data/sicapv2-partition/csv/SICAPv2_test.csv" |
    head -1 >>"$tmp/labels.csv"
done
ntiles=$(($(wc -l <"$tmp/labels.csv") - 1))
[ "$ntiles" -ge 5 ]; check "fixtures: $ntiles labelled SICAPv2 tiles in $tiles" $?
tile=$tiles/$(sed -n 2p "$tmp/labels.csv" | cut -d, -f1)
cat >"$tmp/prompts.json" <<'JSON'
{"classes": ["NC", "G3", "G4", "G5"], "templates": ["a histopathology image of [CLS]"],
 "descriptions": {"NC": ["benign glands"], "G3": ["atrophic well differentiated glands"],
                  "G4": ["cribriform fused glands"], "G5": ["isolated cells and solid nests"]}}
JSON
query="cribriform fused glands"
echo "$query" >"$tmp/query.txt"
run "init model" 0 init model --preset tiny "$tmp/model"
run "features" 0 features --model "$tmp/model" --images "$tiles" --labels "$tmp/labels.csv" \
  --label-column label --classes NC,G3,G4,G5 --out "$tmp/feats.safetensors"
run "zeroshot --predictions" 0 zeroshot --model "$tmp/model" --prompts "$tmp/prompts.json" \
  --features "$tmp/feats.safetensors" --predictions "$tmp/pred.csv" --report "$tmp/report.html" \
  --report-images "$tiles"
run "embed the query" 0 embed --model "$tmp/model" --prompts "$tmp/query.txt" --out "$tmp/query.safetensors"
[ "$fail" = 0 ] || { echo "$pass passed, $fail failed"; exit 1; }

# start NAME ARGS...: serve the tiles on a free loopback port
start() {
  serve_start "$1" --bind 127.0.0.1 --model "$tmp/model" --prompts "$tmp/prompts.json" \
    --features "$tmp/feats.safetensors" --images "$tiles" --workers 2 --max-requests 64 "${@:2}"
}
start token --token "page-s3cret"
token_url=$url token_pid=$pid
start main

k=$((ntiles < 4 ? ntiles : 4))
timeout 300 "$venv/bin/python" "$src/tests/browser/page_test.py" "$url" "$tile" "$tmp/pred.csv" \
  "$tmp/feats.safetensors" "$tmp/query.safetensors" "$query" "$k" "$tmp/page.png" \
  "$token_url" page-s3cret
check "the page in headless Chromium" $?
timeout 120 "$venv/bin/python" "$src/tests/browser/render_report.py" "$tmp/report.html" "$tmp/report.png"
check "the zeroshot report rendered in headless Chromium, not blank" $?
if [ -n "${MEDVLM_SCREENSHOTS:-}" ]; then
  cp "$tmp/page.png" "$MEDVLM_SCREENSHOTS/serve-page.png" 2>/dev/null
  cp "$tmp/report.png" "$MEDVLM_SCREENSHOTS/report.png" 2>/dev/null
fi
kill -0 "$pid" 2>/dev/null; check "the server is still running" $?
for p in "$pid" "$token_pid"; do kill -TERM "$p"; wait "$p"; check "SIGTERM: exit 0" $?; done

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
