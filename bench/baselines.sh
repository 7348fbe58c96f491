#!/usr/bin/env bash
# baselines.sh MEDVLM ORT_BENCH [ROUNDS [PYPI_PYTHON]] > results.jsonl
#
# The encoder benchmark of BENCHMARKS.md: medvlm (1 and 2 threads), PyTorch (torch_baseline.py,
# its best setting --threads 1) and ONNX Runtime (2 threads) on the same PLIP-sized shapes, and
# with PYPI_PYTHON (the venv of ../shared/bench/pypi/pypi_setup.sh) the vision tower under
# PyPI's PyTorch + transformers and OpenVINO (hf_bench.py, 2 threads), and at batch 8 and 32
# medvlm's bf16 vision against OpenVINO's, run in turn, ROUNDS times, in one sitting. medvlm
# runs --precision fp32 but for the bf16 rows. Every run is a separate process; each prints one
# JSON line (tagged with "who"), and /usr/bin/time adds its peak RSS. Run nothing else meanwhile:
# ONNX Runtime's spinning thread pool halves its speed when another process holds a core.
# Set up the baselines first (see ../shared/bench/README.md):
#   apt-get install python3-torch python3-numpy libopenblas0-pthread
#   ../shared/bench/ort/ort_setup.sh /tmp/ort      -> ORT_BENCH=/tmp/ort/ort_bench
set -u
medvlm=${1:?usage: baselines.sh MEDVLM ORT_BENCH [ROUNDS]}
ort=${2:?usage: baselines.sh MEDVLM ORT_BENCH [ROUNDS]}
rounds=${3:-3}
pypi=${4:-}
hf=${HF_BENCH:-$(cd "$(dirname "$0")/../.." && pwd)/shared/bench/pypi/hf_bench.py}
torch=${TORCH_BASELINE:-$(cd "$(dirname "$0")/../.." && pwd)/shared/bench/torch_baseline.py}
tmp=$(mktemp)
# medvlm's vision runs read a PLIP-sized random model from a folder, mapped as a downloaded
# model is (its peak RSS is then what a user's is); the text runs need the CLIP vocabulary,
# which `init model` does not write, and use the same shapes made in memory (--random plip)
model=$(mktemp -d)
trap 'rm -rf "$tmp" "$model"' EXIT
"$medvlm" init model --preset plip --force "$model" > /dev/null || exit 1

run() { # run WHO CONFIG CMD...: one process, its JSON line + peak RSS
  local who=$1 cfg=$2; shift 2
  local out
  out=$(/usr/bin/time -f '%M' -o "$tmp" "$@" 2>/dev/null | grep '^{')
  printf '%s\n' "$out" | while read -r line; do
    printf '{"who":"%s","config":"%s","max_rss_kb":%s,"out":%s}\n' "$who" "$cfg" "$(cat "$tmp")" "$line"
  done
}

for r in $(seq 1 "$rounds"); do
  for b in 1 8 32; do
    for t in 1 2; do
      run "medvlm-${t}t" "vision-b$b" "$medvlm" bench --model "$model" --only vision --batch "$b" \
        --threads "$t" --reps 5 --json --precision fp32
    done
    run "torch-1t" "vision-b$b" /usr/bin/python3 "$torch" vision --batch "$b" --threads 1 --reps 5
    run "ort-2t" "vision-b$b" "$ort" vision 2 "$b" 5
    if [ -n "$pypi" ]; then
      run "pypi-2t" "vision-b$b" "$pypi" "$hf" vision --batch "$b" --threads 2 --reps 5
      run "openvino-2t" "vision-b$b" "$pypi" "$hf" openvino --batch "$b" --threads 2 --reps 5
      if [ "$b" != 1 ]; then # bf16 at batch 8 and 32: medvlm's against OpenVINO's
        run "medvlm-bf16" "vision-b$b" "$medvlm" bench --model "$model" --only vision --batch "$b" \
          --threads 2 --reps 5 --json --precision bf16
        run "openvino-bf16" "vision-b$b" "$pypi" "$hf" openvino --batch "$b" --threads 2 --reps 5 \
          --precision bf16
      fi
    fi
  done
  for t in 1 2; do # one run times both lengths (77 and padded to the longest)
    run "medvlm-${t}t" "text" "$medvlm" bench --only text --threads "$t" --reps 5 --json --precision fp32
  done
  for l in 77 18; do
    tl=$l; [ "$l" = 18 ] && tl=0
    run "torch-1t" "text-l$l" /usr/bin/python3 "$torch" text --batch 16 --len "$tl" --threads 1 --reps 5
    run "ort-2t" "text-l$l" "$ort" text 2 "$l" 5
  done
done
