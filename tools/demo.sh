#!/usr/bin/env bash
# demo.sh MEDVLM [MODEL_DIR] [DATA_DIR]: the main job, end to end, without any download.
# Without MODEL_DIR it generates a tiny random-weight model and a synthetic image set.
set -euo pipefail
medvlm=$1 model=${2:-} data=${3:-}
out=${DEMO_OUT:-demo-out}
mkdir -p "$out"
if [ -z "$model" ]; then
  echo "== no MODEL given: generating a tiny CLIP with RANDOM weights (results are chance level)"
  model=$out/tiny-random-clip
  "$medvlm" init model --preset tiny --seed 0 "$model"
fi
if [ -z "$data" ]; then
  echo "== no DATA given: generating a synthetic labelled image set"
  data=$out/synthetic-data
  "$medvlm" init data --per-class 8 --seed 0 "$data"
fi
echo "== model"
"$medvlm" info "$model"
