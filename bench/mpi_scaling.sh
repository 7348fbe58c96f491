#!/usr/bin/env bash
# mpi_scaling.sh MEDVLM [ROUNDS [WORK]] - strong scaling of `medvlm features` and `medvlm
# finetune` under mpirun, 1 and 2 ranks of 1 thread each, on the PLIP-sized random model
# (ViT-B/32, 224 px): features of 128 synthetic 512-px JPEGs (batch 32), and 2 epochs of LoRA
# (r 4 on q, k, v) on 32 of them (batch 16: 4 steps). Each round runs, in turn: -np 1, -np 2,
# and a control that needs no MPI: two independent one-process feature runs on the two halves
# of the images at the same time, which is the most two ranks could get from this machine at
# that moment (on a machine shared with other work it shows how much of the second core was
# really free). Prints every run, then the medians; features -np 2 is checked byte for byte
# against -np 1. WORK (default: a temporary folder, removed) keeps the model and images.
set -u
medvlm=${1:?usage: mpi_scaling.sh MEDVLM [ROUNDS [WORK]]}
rounds=${2:-5}
work=${3:-}
src=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "$work" ]; then
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
fi
mpi=(mpirun --oversubscribe)
[ "$(id -u)" = 0 ] && mpi+=(--allow-run-as-root)
cd "$work" || exit 1
[ -d plip ] || "$medvlm" init model --preset plip --seed 1 plip >/dev/null
[ -d d ] || "$medvlm" init data --per-class 32 --size 512 --seed 4 d >/dev/null
head -65 d/labels.csv >d/half1.csv
{ head -1 d/labels.csv; tail -n +66 d/labels.csv; } >d/half2.csv
K=(features --model plip --images d/images --classes NC,G3,G4,G5 --threads 1)
T=(finetune --model plip --prompts "$src/examples/sicapv2_ensemble.json" --images d/images
   --labels d/labels.csv --classes NC,G3,G4,G5 --peft lora --shots 8 --batch 16 --epochs 2
   --threads 1)
wall() { /usr/bin/time -f %e -o "$work/t" "$@" >/dev/null 2>"$work/e"; cat "$work/t"; }
: >runs.txt
for r in $(seq 1 "$rounds"); do
  for n in 1 2; do
    echo "features np$n $(wall "${mpi[@]}" -np $n "$medvlm" "${K[@]}" --labels d/labels.csv --out f$n.st)" >>runs.txt
  done
  s=$(date +%s.%N)
  "$medvlm" "${K[@]}" --labels d/half1.csv --out h1.st >/dev/null &
  "$medvlm" "${K[@]}" --labels d/half2.csv --out h2.st >/dev/null
  wait
  echo "features control-pair $(awk -v a="$s" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')" >>runs.txt
  for n in 1 2; do
    rm -rf run$n
    w=$(wall "${mpi[@]}" -np $n "$medvlm" "${T[@]}" --out run$n)
    tr=$(grep -o '^epoch 2/2 loss [0-9.]* ([0-9.]* s)' "$work/e" | grep -o '[0-9.]* s)' | tr -d ' s)')
    echo "finetune np$n $w train $tr" >>runs.txt
  done
  echo "round $r: load $(cut -d' ' -f1-3 /proc/loadavg)" >>runs.txt
done
cat runs.txt
cmp -s f1.st f2.st && echo "features -np 2 = -np 1, byte for byte" || echo "features -np 2 DIFFERS from -np 1"
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
for w in "features np1" "features np2" "features control-pair"; do
  echo "median $w: $(grep "^$w " runs.txt | awk '{ print $3 }' | median) s"
done
for n in 1 2; do
  echo "median finetune np$n: $(grep "^finetune np$n " runs.txt | awk '{ print $3 }' | median) s wall," \
    "$(grep "^finetune np$n " runs.txt | awk '{ print $5 }' | median) s training (4 steps)"
done
