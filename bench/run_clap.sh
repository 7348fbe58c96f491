#!/usr/bin/env bash
# run_clap.sh BUILD_DIR [REPS]: CLAP training (100 epochs, batch 32, SGD 0.9, lr 1e-3) in C (1 and 2
# threads) and in PyTorch (../shared/bench/torch_baseline.py beside the clone, or
# $MEDVLM_TORCH_BASELINE), alternating in one run on 64 x 512 and 10,000 x 512 random features.
# At 10,000 rows also the reading of the features in the epochs' orders (bench_clap --walk,
# 2 threads, prefetching as the trainer does): the memory floor. Prints the JSON lines of all.
set -eu
build=${1:?usage: run_clap.sh BUILD_DIR [REPS]}
reps=${2:-3}
baseline=${MEDVLM_TORCH_BASELINE:-$(cd "$(dirname "$0")/../.." && pwd)/shared/bench/torch_baseline.py}
for n in 64 10000; do
  for round in 1 2; do
    /usr/bin/python3 "$baseline" clap --n "$n" --threads 1 --reps "$reps"
    OMP_NUM_THREADS=1 "$build/bench/bench_clap" --n "$n" --reps "$reps" --threads 1
    OMP_NUM_THREADS=2 "$build/bench/bench_clap" --n "$n" --reps "$reps" --threads 2
    if [ "$n" -gt 64 ]; then
      OMP_NUM_THREADS=2 "$build/bench/bench_clap" --n "$n" --reps "$reps" --threads 2 --walk
    fi
  done
done
