#!/usr/bin/env bash
# run_stage.sh DUMP COMPARE STAGE OUTDIR: golden_dump one stage, then compare it in C.
# The golden folder is $MEDVLM_GOLDEN, else the build's default (../shared/golden/tiny-a).
set -u
dump=$1 compare=$2 stage=$3 out=$4
golden=${MEDVLM_GOLDEN:-${MEDVLM_GOLDEN_DEFAULT:-}}
if [ -z "$golden" ] || [ ! -f "$golden/manifest.json" ]; then
  echo "golden folder not found: '${golden}'. Set MEDVLM_GOLDEN=/path/to/shared/golden/tiny-a" >&2
  echo "(the golden tests never pass without their reference data)" >&2
  exit 1
fi
mkdir -p "$out/$stage"
"$dump" "$golden" "$out/$stage" "$stage" || exit 1
"$compare" "$out/$stage" "$golden" "$stage"
