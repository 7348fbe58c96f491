#!/usr/bin/env bash
# bench_vs_torch.sh [ROUNDS] - medvlm bench and the PyTorch baseline, alternated in one sitting
# (vision batch 1, 8, 32; text 16 prompts at length 77 and padded to the longest), so that
# load from other processes hits both alike. Prints every run and, per case, the best
# (least disturbed) rate of each and their ratio.
#   MEDVLM=build/medvlm  TORCH_BASELINE=../shared/bench/torch_baseline.py  THREADS=2
set -u
rounds=${1:-3}
here=$(cd "$(dirname "$0")/.." && pwd)
medvlm=${MEDVLM:-$here/build/medvlm}
tb=${TORCH_BASELINE:-$here/../shared/bench/torch_baseline.py}
threads=${THREADS:-2}
py=/usr/bin/python3
declare -A best_m best_t
cases="vision:1 vision:8 vision:32 text:77 text:0"
for r in $(seq "$rounds"); do
  for c in $cases; do
    mode=${c%%:*} arg=${c##*:}
    if [ "$mode" = vision ]; then
      t=$($py "$tb" vision --batch "$arg" --threads 1 --reps 3 | tail -1 |
          $py -c 'import json,sys; print(json.loads(sys.stdin.read())["images_per_s"])')
      m=$("$medvlm" bench --only vision --batch "$arg" --threads "$threads" --reps 3 --json |
          $py -c 'import json,sys; print(json.loads(sys.stdin.read().splitlines()[-1])["per_s"])')
    else
      t=$($py "$tb" text --batch 16 --len "$arg" --threads 1 --reps 3 | tail -1 |
          $py -c 'import json,sys; print(json.loads(sys.stdin.read())["prompts_per_s"])')
      want=$([ "$arg" = 0 ] && echo 18 || echo 77)
      m=$("$medvlm" bench --only text --threads "$threads" --reps 3 --json |
          $py -c "import json,sys; print([json.loads(l)['per_s'] for l in sys.stdin if json.loads(l)['len']==$want][0])")
    fi
    echo "round $r $c: torch $t/s  medvlm $m/s"
    best_t[$c]=$($py -c "print(max(${best_t[$c]:-0}, $t))")
    best_m[$c]=$($py -c "print(max(${best_m[$c]:-0}, $m))")
  done
done
for c in $cases; do
  $py -c "t=${best_t[$c]}; m=${best_m[$c]}; print(f'best $c: torch {t:.2f}/s  medvlm {m:.2f}/s  ratio {m/t:.2f}x')"
done
