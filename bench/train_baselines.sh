#!/usr/bin/env bash
# train_baselines.sh MEDVLM PYPI_PYTHON [ROUNDS] > results.jsonl
#
# The fine-tuning-step benchmark of BENCHMARKS.md: one PEFT step (vision forward, zero-shot
# head on 4 classes, cross-entropy, backward, Adam) on the PLIP-sized model with random
# weights, for lora, ln and bias at batch 16 and 32: medvlm (2 and 1 threads), Debian's
# PyTorch (torch_baseline.py, its best setting --threads 1) and PyTorch + transformers + peft
# from PyPI (hf_bench.py, --threads 1 and 2: its MKL/oneDNN kernels scale), run in turn, ROUNDS times,
# in one sitting; then at batch 16 the bf16 steps, medvlm's (--precision bf16: fp32 master
# weights) and PyPI's PyTorch under torch.autocast(bfloat16), both at 2 threads. Every run is
# a separate process; each prints one JSON line, and
# /usr/bin/time adds its peak RSS. Run nothing else meanwhile. Set up the baselines first
# (see ../shared/bench/README.md):
#   apt-get install python3-torch python3-numpy libopenblas0-pthread
#   bash ../shared/bench/pypi/pypi_setup.sh /tmp/pyb      -> PYPI_PYTHON=/tmp/pyb/venv/bin/python
set -u
medvlm=${1:?usage: train_baselines.sh MEDVLM PYPI_PYTHON [ROUNDS]}
pypi=${2:?usage: train_baselines.sh MEDVLM PYPI_PYTHON [ROUNDS]}
rounds=${3:-3}
shared=$(cd "$(dirname "$0")/../.." && pwd)/shared/bench
torch=${TORCH_BASELINE:-$shared/torch_baseline.py}
hf=${HF_BENCH:-$shared/pypi/hf_bench.py}
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT

run() { # run WHO CONFIG CMD...: one process, its JSON line + peak RSS
  local who=$1 cfg=$2; shift 2
  local out
  out=$(/usr/bin/time -f '%M' -o "$tmp" "$@" 2>/dev/null | grep '^{' | tail -1)
  [ -n "$out" ] || out='{}'
  printf '{"who":"%s","config":"%s","max_rss_kb":%s,"out":%s}\n' "$who" "$cfg" "$(tail -1 "$tmp")" "$out"
}

for r in $(seq 1 "$rounds"); do
  for b in 16 32; do
    for m in lora ln bias; do
      cfg="$m-b$b"
      run medvlm-2t "$cfg" "$medvlm" bench --train "$m" --batch "$b" --threads 2 --reps 5 --json --precision fp32
      run torch-1t "$cfg" /usr/bin/python3 "$torch" train --peft "$m" --batch "$b" --threads 1 --reps 1
      run medvlm-1t "$cfg" "$medvlm" bench --train "$m" --batch "$b" --threads 1 --reps 3 --json --precision fp32
      run pypi-1t "$cfg" "$pypi" "$hf" train --peft "$m" --batch "$b" --threads 1 --reps 1
      run pypi-2t "$cfg" "$pypi" "$hf" train --peft "$m" --batch "$b" --threads 2 --reps 1
    done
  done
  # bf16: medvlm's bf16 step (fp32 master weights) against PyTorch's bf16 autocast step
  for m in lora ln bias; do
    cfg="$m-b16"
    run medvlm-bf16 "$cfg" "$medvlm" bench --train "$m" --batch 16 --threads 2 --reps 5 --json --precision bf16
    run pypi-bf16 "$cfg" "$pypi" "$hf" train --peft "$m" --batch 16 --threads 2 --reps 1 --precision bf16
  done
done
