#!/usr/bin/env bash
# contention.sh MEDVLM [ROUNDS] : medvlm's throughput with another process busy on one core.
#
# The machines users share are busy. This runs, ROUNDS times in turn, the vision encoder at
# batch 8 and 32 and a fine-tuning step (ln, batch 16) at 1 and 2 threads, first on a quiet
# machine and then with one busy process (a shell loop, one core's worth) beside it, and prints
# one line per run: "quiet|busy  workload  threads  seconds-or-images/s". What to read: with
# the busy process, medvlm's 2-thread figure should be no worse than its 1-thread figure
# (GEMMs, attention and the element-wise loops hand out their work first come first served,
# so the thread that shares its core with the other process takes less of it).
# Run nothing else meanwhile.
set -u
medvlm=${1:?usage: contention.sh MEDVLM [ROUNDS]}
rounds=${2:-3}

one() { # one LABEL CMD...: the figure of medvlm's JSON line (images/s, or seconds a step)
  local label=$1; shift
  "$@" --json 2>/dev/null | grep '^{' | grep -v '"bench": *"cpu"' |
    grep -o '"\(per_s\|step_s\)": *[0-9.e+-]*' | while read -r fig; do
    printf '%s %s\n' "$label" "$fig"
  done
}

busy_pid=
start_busy() { (while :; do :; done) & busy_pid=$!; }
stop_busy() { [ -n "$busy_pid" ] && kill "$busy_pid" 2>/dev/null; wait "$busy_pid" 2>/dev/null; busy_pid=; }
trap stop_busy EXIT

for r in $(seq 1 "$rounds"); do
  for mode in quiet busy; do
    [ "$mode" = busy ] && start_busy
    for t in 1 2; do
      one "$mode vision-b8 t$t" "$medvlm" bench --only vision --batch 8 --threads "$t" --reps 3
      one "$mode vision-b32 t$t" "$medvlm" bench --only vision --batch 32 --threads "$t" --reps 3
      one "$mode train-ln-b16 t$t" "$medvlm" bench --train ln --batch 16 --threads "$t" --reps 3
    done
    stop_busy
  done
done
