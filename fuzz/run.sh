#!/usr/bin/env bash
# run.sh BUILD_DIR SECONDS: run every fuzz target for SECONDS, seeded from fuzz/corpus/<name>/
# and from the golden folder (copied into a scratch corpus, never into the repo).
# Prints executions per target; fails on any crash, leak or sanitizer report.
set -uo pipefail
build=$1 secs=$2
here=$(cd "$(dirname "$0")" && pwd)
golden=${MEDVLM_GOLDEN:-$here/../../shared/golden/tiny-a}
shared=${MEDVLM_SHARED_DATA:-$here/../../shared/data}
work=$here/work
status=0
for bin in "$build"/fuzz/fuzz_*; do
  [ -x "$bin" ] || continue
  name=$(basename "$bin"); short=${name#fuzz_}
  corpus=$work/$short; mkdir -p "$corpus" "$here/artifacts"
  [ -d "$here/corpus/$short" ] && cp -n "$here/corpus/$short"/* "$corpus"/ 2>/dev/null
  if [ -f "$here/$short.seeds" ]; then      # seed files from the golden/shared folders
    while read -r rel; do
      [ -z "$rel" ] && continue
      for f in $golden/$rel $shared/$rel; do [ -f "$f" ] && cp -n "$f" "$corpus/" 2>/dev/null; done
    done < "$here/$short.seeds"
  fi
  log=$work/$short.log
  "$bin" "$corpus" -max_total_time="$secs" -print_final_stats=1 -max_len=65536 -rss_limit_mb=4096 \
    -artifact_prefix="$here/artifacts/$short-" > "$log" 2>&1
  rc=$?
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$')
  echo "fuzz $short: ${execs:-0} executions in ${secs}s, exit $rc"
  if [ $rc -ne 0 ]; then status=1; tail -40 "$log"; fi
done
exit $status
