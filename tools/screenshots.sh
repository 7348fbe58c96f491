#!/usr/bin/env bash
# screenshots.sh MEDVLM [OUTDIR]: the README's screenshots, docs/img/serve-page.png and
# docs/img/report.png (or under OUTDIR), made again from nothing but medvlm itself:
#
#   - a tiny model with random weights and the synthetic data set of `medvlm init model` /
#     `medvlm init data` (fixed seeds: the same tiles and the same numbers every time; no real
#     image is ever shown), with the features of its tiles;
#   - serve-page.png: `medvlm serve` on a free loopback port, the page in headless Chromium after an
#     upload of one tile and a text search (tools/screenshots.py page);
#   - report.png: `medvlm adapt --method lp --seed 3 --report` trained on a second
#     synthetic set and tested on the same tiles (with random weights zero-shot puts every tile
#     in one class; a linear probe on the features shows a real confusion matrix, a loss curve
#     and the misclassified tiles) (tools/screenshots.py report).
#
# Needs Debian's chromium and chromium-driver (make browser-deps) and selenium, from PyPI into
# VENV (default build/venv-browser, the browser test's). The PNGs are recompressed with
# Debian's pngquant and optipng when they are installed (each stays well under 300 KB).
set -eu
medvlm=$(realpath "${1:?usage: screenshots.sh MEDVLM [OUTDIR]}")
src=$(cd "$(dirname "$0")/.." && pwd)
outdir=$(realpath "${2:-$src/docs/img}")
venv=${VENV:-$src/build/venv-browser}
SELENIUM=selenium==4.27.1 # as tests/cli/test_browser.sh
export CHROMIUM=${CHROMIUM:-/usr/bin/chromium} CHROMEDRIVER=${CHROMEDRIVER:-/usr/bin/chromedriver}
[ -x "$CHROMIUM" ] && [ -x "$CHROMEDRIVER" ] ||
  { echo "screenshots.sh: needs chromium and chromium-driver (make browser-deps)" >&2; exit 1; }
if ! "$venv/bin/python" -c 'import selenium' 2>/dev/null; then
  python3 -m venv "$venv" && "$venv/bin/pip" install -q "$SELENIUM"
fi
mkdir -p "$outdir"

tmp=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
cd "$tmp" # relative paths: the page and the report show the folder names given here

"$medvlm" init model --preset tiny --seed 0 tiny-random-clip >/dev/null
"$medvlm" init data --per-class 4 --size 256 --seed 0 synthetic >/dev/null
"$medvlm" features --model tiny-random-clip --images synthetic/images \
  --labels synthetic/labels.csv --classes NC,G3,G4,G5 --out synthetic.safetensors >/dev/null
cat >prompts.json <<'JSON'
{"classes": ["NC", "G3", "G4", "G5"], "templates": ["a histopathology image of [CLS]"],
 "descriptions": {"NC": ["benign glands"], "G3": ["atrophic well differentiated glands"],
                  "G4": ["cribriform fused glands"], "G5": ["isolated cells and solid nests"]}}
JSON

"$medvlm" init data --per-class 8 --size 256 --seed 1 synthetic-train >/dev/null
"$medvlm" features --model tiny-random-clip --images synthetic-train/images \
  --labels synthetic-train/labels.csv --classes NC,G3,G4,G5 --out train.safetensors >/dev/null
"$medvlm" adapt --method lp --train train.safetensors --test synthetic.safetensors \
  --prompts prompts.json --model tiny-random-clip --shots 4 --seed 3 \
  --report report.html --report-images synthetic/images >/dev/null
"$venv/bin/python" "$src/tools/screenshots.py" report report.html "$outdir/report.png"

"$medvlm" serve --port 0 --bind 127.0.0.1 --model tiny-random-clip --prompts prompts.json \
  --features synthetic.safetensors --images synthetic/images >serve.out 2>serve.err &
pid=$!
url=
for _ in $(seq 100); do
  url=$(sed -n 's|^medvlm serve: listening on \(http://127\.0\.0\.1:[0-9]*\)/ .*|\1|p' serve.out)
  [ -n "$url" ] && break
  sleep 0.1
done
[ -n "$url" ] || { cat serve.err >&2; exit 1; }
"$venv/bin/python" "$src/tools/screenshots.py" page "$url" synthetic/images/synth_G4_00001.jpg \
  "cribriform fused glands" "$outdir/serve-page.png"
kill -TERM "$pid"
wait "$pid"
pid=

for png in "$outdir/report.png" "$outdir/serve-page.png"; do
  if command -v pngquant >/dev/null; then pngquant --force --strip --quality 80-98 --output "$png" "$png"; fi
  if command -v optipng >/dev/null; then optipng -quiet -o2 -strip all "$png"; fi
  echo "$png: $(wc -c <"$png") bytes"
done
