#!/usr/bin/env bash
# serve_load.sh MEDVLM [REQUESTS] [SECONDS] [CONCURRENCY] [WORKERS]: `medvlm serve` under load
# with a PLIP-sized model (ViT-B/32 vision tower, 512-wide text tower, random weights from
# `medvlm init model --preset plip`), as tests/cli/test_load.sh does with the tiny model.
#
# ApacheBench (`ab`, Debian's apache2-utils) sends REQUESTS (default 10000) at CONCURRENCY
# (default 16), one connection per request, to POST /api/zeroshot (a 224 x 224 JPEG of
# `medvlm init data`) and to POST /api/search/text, each run stopping after SECONDS (default
# 300) if it has not finished: a PLIP-sized zero-shot request costs one vision-encoder forward
# (about 4.4 GFLOP), so 10,000 of them take far longer than a search on a small machine. The
# server runs on a free loopback port with WORKERS encoders (default 2, serve's default).
# Prints, per endpoint: requests completed, non-2xx answers, requests/s, latency (mean, 50 %,
# 95 %, 99 %, max, in ms) and the server's VmRSS/VmHWM; then the CPU. Run nothing else meanwhile.
# The model (about 480 MB) is written to a temporary folder and removed at the end.
set -u
medvlm=${1:?usage: serve_load.sh MEDVLM [REQUESTS] [SECONDS] [CONCURRENCY] [WORKERS]}
n=${2:-10000} limit_s=${3:-300} conc=${4:-16} workers=${5:-2}
command -v ab >/dev/null || { echo "serve_load.sh: ab is needed (apt-get install apache2-utils)" >&2; exit 1; }

tmp=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

"$medvlm" init model --preset plip "$tmp/model" >/dev/null &&
  "$medvlm" init data --per-class 8 --size 224 "$tmp/data" >/dev/null &&
  "$medvlm" features --model "$tmp/model" --images "$tmp/data/images" \
    --labels "$tmp/data/labels.csv" --classes NC,G3,G4,G5 --out "$tmp/feats.safetensors" >/dev/null ||
  { echo "serve_load.sh: could not make the model and data" >&2; exit 1; }
cat >"$tmp/prompts.json" <<'JSON'
{"classes": ["NC", "G3", "G4", "G5"], "templates": ["a histopathology image of [CLS]"],
 "descriptions": {"NC": ["benign glands"], "G3": ["atrophic well differentiated glands"],
                  "G4": ["cribriform fused glands"], "G5": ["isolated cells and solid nests"]}}
JSON
printf '{"text":"cribriform fused glands","k":8}' >"$tmp/search.json"

"$medvlm" serve --port 0 --bind 127.0.0.1 --model "$tmp/model" --prompts "$tmp/prompts.json" \
  --features "$tmp/feats.safetensors" --images "$tmp/data/images" --workers "$workers" \
  --max-requests $((conc * 2)) >"$tmp/serve.out" 2>"$tmp/serve.err" &
pid=$!
url=
for _ in $(seq 300); do
  url=$(sed -n 's|^medvlm serve: listening on \(http://127\.0\.0\.1:[0-9]*\)/ .*|\1|p' "$tmp/serve.out")
  [ -n "$url" ] && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
[ -n "$url" ] || { cat "$tmp/serve.err" >&2; exit 1; }

mem() { awk '$1 == "VmRSS:" { r = $2 } $1 == "VmHWM:" { h = $2 } END { printf "VmRSS %d MB, VmHWM %d MB", r / 1024, h / 1024 }' "/proc/$pid/status"; }
# load NAME ENDPOINT BODY TYPE: one ab run, one line of figures
load() {
  local name=$1 ep=$2 body=$3 type=$4
  ab -q -t "$limit_s" -n "$n" -c "$conc" -s 120 -p "$body" -T "$type" "$url$ep" >"$tmp/ab" 2>&1 ||
    { echo "$name: ab failed" >&2; tail -5 "$tmp/ab" >&2; }
  awk -v name="$name" -v conc="$conc" -v mem="$(mem)" '
    /^Complete requests/ { done = $3 }
    /^Failed requests/ { failed = $3 }
    /^Non-2xx responses/ { non2xx = $3 }
    /^Requests per second/ { rps = $4 }
    /^Time taken for tests/ { secs = $5 }
    /^Total:/ { mean = $3; max = $6 }
    $1 == "50%" { p50 = $2 } $1 == "95%" { p95 = $2 } $1 == "99%" { p99 = $2 }
    END { printf "%-12s %6d requests in %6.1f s at concurrency %d (failed %d, non-2xx %d): %8.1f requests/s, latency ms mean %d p50 %d p95 %d p99 %d max %d; %s\n",
                 name, done, secs, conc, failed, non2xx + 0, rps, mean, p50, p95, p99, max, mem }' "$tmp/ab"
}

echo "medvlm serve, PLIP-sized model (random weights), $workers workers, loopback, ab -n $n -c $conc -t $limit_s"
ab -q -n $((conc * 4)) -c "$conc" -s 120 -p "$tmp/data/images/synth_G4_00001.jpg" -T image/jpeg \
  "$url/api/zeroshot" >/dev/null 2>&1 # warm-up
load zeroshot /api/zeroshot "$tmp/data/images/synth_G4_00001.jpg" image/jpeg
load search/text /api/search/text "$tmp/search.json" application/json
echo "cpu: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), $(nproc) cores"
kill -TERM "$pid"
wait "$pid"
pid=
