# serve_harness.sh - sourced after harness.sh by the tests that run `medvlm serve`:
#   serve_fixtures             a tiny generated model ($tmp/model), a synthetic data set
#                              ($tmp/data), its features ($tmp/feats.safetensors) and a prompt
#                              file ($tmp/prompts.json); the test stops (counted as failed) if
#                              one cannot be made
#   serve_start NAME ARGS...   `medvlm serve --port 0 ARGS...` in the background, on a free
#                              port; waits for its address in $url ($pid: the process); the
#                              test stops if it does not listen. Every server is stopped on exit.
serve_pids=()
serve_cleanup() {
  for p in "${serve_pids[@]}"; do kill "$p" 2>/dev/null; done
  rm -rf "$tmp"
}
trap serve_cleanup EXIT

serve_stop_test() { # serve_stop_test MESSAGE: count a failure and end the test
  echo "FAIL $1" >&2
  fail=$((fail + 1))
  echo "$pass passed, $fail failed"
  exit 1
}

serve_fixtures() {
  "$cli" init model --preset tiny "$tmp/model" >/dev/null &&
    "$cli" init data --per-class 3 --size 64 "$tmp/data" >/dev/null &&
    "$cli" features --model "$tmp/model" --images "$tmp/data/images" \
      --labels "$tmp/data/labels.csv" --classes NC,G3,G4,G5 --out "$tmp/feats.safetensors" \
      >/dev/null || serve_stop_test "fixtures: model, data set and features"
  cat >"$tmp/prompts.json" <<'JSON'
{"classes": ["NC", "G3", "G4", "G5"], "templates": ["a slide showing [CLS]"],
 "descriptions": {"NC": ["benign <glands>"], "G3": ["atrophic glands"], "G4": ["cribriform"],
                  "G5": ["isolated cells"]}}
JSON
}

serve_start() {
  local name=$1
  shift
  "$cli" serve --port 0 "$@" >"$tmp/$name.out" 2>"$tmp/$name.err" &
  pid=$!
  serve_pids+=("$pid")
  url=
  for _ in $(seq 100); do
    url=$(sed -n 's|^medvlm serve: listening on \(http://[^ ]*\)/ .*|\1|p' "$tmp/$name.out")
    [ -n "$url" ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  [ -n "$url" ]
  check "serve ($name): listening ($url)" $?
  [ -n "$url" ] || { cat "$tmp/$name.err" >&2; serve_stop_test "serve ($name) did not start"; }
}
