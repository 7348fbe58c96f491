#!/usr/bin/env bash
# medvlm under `mpirun -np N` (Open MPI), against one process on the same inputs:
#   features   N = 1, 2, 3, 4 (4 ranks, 3 batches: a rank with nothing to do): the same file,
#              byte for byte; the per-rank resume logs gone after success
#   a rank that fails (an undecodable image in the last rank's shard): non-zero exit, the
#              rank named, no file; --resume with another N refused, with the same N the
#              same bytes; a rank killed with SIGKILL midway: non-zero exit, mpirun
#              names the rank, no file, and --resume finishes to the identical file
#   zeroshot, adapt  (rank 0 alone): the same printed results and files
#   finetune   N = 1: bit for bit one process's run; N = 2, 3: every trained tensor and the
#              optimiser state within |d| <= 1e-6 + 1e-4 |ref| of one process's, and the
#              printed losses equal to 6 digits; N = 3 with batches of 2 (a rank with an
#              empty slice) within the same tolerance; N = 2 twice: bit for bit the same;
#              interrupted with N = 2 and resumed with N = 3: within the same tolerance
# The serial build (no MPI): refuses to run as several MPI processes. Skipped (77) without
# mpirun.
set -u
cli=${MEDVLM_CLI:?run through ctest}
src=${MEDVLM_SOURCE_DIR:?run through ctest}
cmpst=${MEDVLM_ST_COMPARE:?run through ctest}
. "$(dirname "$0")/harness.sh" # check, run, has, hasnt; $tmp, $out, $err

mpiexec=${MEDVLM_MPIEXEC:-}
[ -n "$mpiexec" ] && [ -x "$mpiexec" ] || mpiexec=$(command -v mpirun || true)
if [ -z "$mpiexec" ]; then
  echo "skipped: no mpirun (apt-get install openmpi-bin libopenmpi-dev, reconfigure)"
  exit 77
fi
mpi=("$mpiexec" --oversubscribe)
[ "$(id -u)" = 0 ] && mpi+=(--allow-run-as-root)
# Open MPI's own allocations are not ours to check for leaks
[ "${MEDVLM_SANITIZE:-OFF}" = ON ] && export ASAN_OPTIONS=detect_leaks=0
np() { local n=$1; shift; "${mpi[@]}" -np "$n" "$cli" "$@"; }

"$cli" init model --preset tiny --seed 3 "$tmp/model" >/dev/null; check "init model" $?
"$cli" init data --per-class 12 --size 96 --seed 5 "$tmp/data" >/dev/null; check "init data" $?
F=(features --model "$tmp/model" --images "$tmp/data/images" --labels "$tmp/data/labels.csv"
   --classes NC,G3,G4,G5 --batch-size 5)

if [ "${MEDVLM_MPI:-OFF}" != ON ]; then
  np 2 "${F[@]}" --out "$tmp/f.safetensors" >"$out" 2>"$err"; rc=$?
  [ $rc = 1 ] && grep -q "built without MPI" "$err" && [ ! -e "$tmp/f.safetensors" ]
  check "serial build under mpirun -np 2: refused, nothing written (exit $rc)" $?
  echo "$pass passed, $fail failed (serial build: the MPI runs are not built)"
  [ "$fail" = 0 ]
  exit
fi

# ---- features: N ranks = one process, byte for byte
run "features, one process" 0 "${F[@]}" --out "$tmp/ref.safetensors"
for n in 1 2 3; do
  np $n "${F[@]}" --out "$tmp/f$n.safetensors" >"$out" 2>"$err"; check "features -np $n (exit $?)" $?
  cmp -s "$tmp/ref.safetensors" "$tmp/f$n.safetensors"; check "features -np $n = one process, byte for byte" $?
  has "features -np $n" "^wrote $tmp/f$n.safetensors: 48 images x 32 dims" "$out"
  [ "$(grep -c '^wrote' "$out")" = 1 ]; check "features -np $n: one summary (rank 0's)" $?
  [ -z "$(ls "$tmp" | grep partial)" ]; check "features -np $n: no resume log left" $?
done
has "features -np 3 says the threads" "MPI: 3 ranks, 3 on this node, [0-9]* thread" "$err"
run "features --batch-size 16, one process" 0 "${F[@]}" --batch-size 16 --out "$tmp/ref16.safetensors"
np 4 "${F[@]}" --batch-size 16 --out "$tmp/f4.safetensors" >"$out" 2>"$err"; check "features -np 4, 3 batches (exit $?)" $?
cmp -s "$tmp/ref16.safetensors" "$tmp/f4.safetensors"; check "features -np 4 (a rank without a batch) = one process" $?

# ---- a rank that fails: the last image is in the last rank's shard
cp -r "$tmp/data" "$tmp/bad"
last=$(tail -n 1 "$tmp/bad/labels.csv" | cut -d, -f1)
printf 'not an image' >"$tmp/bad/images/$last"
np 3 "${F[@]}" --images "$tmp/bad/images" --out "$tmp/bad.safetensors" >"$out" 2>"$err"; rc=$?
[ $rc != 0 ]; check "a rank failing: the job fails (exit $rc)" $?
has "the failing rank is named" "MPI rank 2 of 3 failed" "$err"
has "and the image" "$last" "$err"
[ ! -e "$tmp/bad.safetensors" ]; check "a rank failing: no features file" $?
# its logs stay: a resume with another N is refused (the shards differ), with the same N it
# finishes (the image repaired) to the one-process bytes
cp "$tmp/data/images/$last" "$tmp/bad/images/$last"
np 2 "${F[@]}" --images "$tmp/bad/images" --out "$tmp/bad.safetensors" --resume >"$out" 2>"$err"; rc=$?
[ $rc != 0 ] && grep -q "belongs to a different job (.*number of MPI ranks)" "$err"
check "--resume with another N: refused, the reason said (exit $rc)" $?
np 3 "${F[@]}" --images "$tmp/bad/images" --out "$tmp/bad.safetensors" --resume >"$out" 2>"$err"
check "--resume with the same N (exit $?)" $?
has "--resume with the same N used the logs" "batches resumed" "$out"
cmp -s "$tmp/ref.safetensors" "$tmp/bad.safetensors"; check "--resume with the same N = one process, byte for byte" $?

# ---- a rank killed with SIGKILL midway: no file; --resume finishes to the same bytes
# 400 large JPEGs (8 made, each linked 50 times) in batches of 1: a few seconds a rank
"$cli" init data --per-class 2 --size 1200 --seed 9 "$tmp/big0" >/dev/null
mkdir -p "$tmp/big/images"
echo "image_name,NC,G3,G4,G5" >"$tmp/big/labels.csv"
for i in $(seq 1 50); do
  tail -n +2 "$tmp/big0/labels.csv" | while IFS=, read -r f rest; do
    ln "$tmp/big0/images/$f" "$tmp/big/images/$i-$f"
    echo "$i-$f,$rest" >>"$tmp/big/labels.csv"
  done
done
K=(features --model "$tmp/model" --images "$tmp/big/images" --labels "$tmp/big/labels.csv"
   --classes NC,G3,G4,G5 --batch-size 1 --threads 1)
run "big, one process" 0 "${K[@]}" --out "$tmp/bigref.safetensors"
# the ranks of this job carry a mark in their environment (mpirun passes its own on)
MEDVLM_TEST_JOB=$tmp np 2 "${K[@]}" --out "$tmp/big.safetensors" >"$out" 2>"$err" &
mpid=$!
victim=
for _ in $(seq 1 1000); do # rank 1 has a batch or two in its log: find it, kill it
  sz=$(stat -c %s "$tmp/big.safetensors.rank1.partial" 2>/dev/null || echo 0)
  if [ "$sz" -gt 1000 ]; then
    for e in /proc/[0-9]*/environ; do
      grep -qsxz "MEDVLM_TEST_JOB=$tmp" "$e" && grep -qsxz OMPI_COMM_WORLD_RANK=1 "$e" || continue
      victim=${e#/proc/}
      victim=${victim%/environ}
    done
    [ -n "$victim" ] && break
  fi
  sleep 0.01
done
[ -n "$victim" ] && kill -9 "$victim"
wait $mpid; rc=$?
[ -n "$victim" ]; check "rank 1 found and killed" $?
[ $rc != 0 ]; check "a rank killed: the job fails (exit $rc)" $?
grep -Eq "rank 1 .*(signal 9|Killed)|rank 1 with PID .* exited on signal" "$err"
check "a rank killed: mpirun names rank 1 and the signal" $?
[ $rc != 0 ] || cat "$err" >&2
[ ! -e "$tmp/big.safetensors" ]; check "a rank killed: no features file" $?
[ -e "$tmp/big.safetensors.rank1.partial" ]; check "a rank killed: its resume log is there" $?
np 2 "${K[@]}" --out "$tmp/big.safetensors" --resume >"$out" 2>"$err"; check "--resume -np 2 (exit $?)" $?
has "--resume used the logs" "batches resumed" "$out"
cmp -s "$tmp/bigref.safetensors" "$tmp/big.safetensors"; check "resumed -np 2 = one process, byte for byte" $?
[ -z "$(ls "$tmp" | grep 'big.safetensors.*partial')" ]; check "resumed: no resume log left" $?

# ---- zeroshot, adapt: rank 0 alone, the same results
E=$src/examples/sicapv2_ensemble.json
Z=(zeroshot --model "$tmp/model" --prompts "$E" --features "$tmp/ref.safetensors")
run "zeroshot, one process" 0 "${Z[@]}" --json "$tmp/zs1.json" --predictions "$tmp/p1.csv"
cp "$out" "$tmp/zs1.txt"
np 3 "${Z[@]}" --json "$tmp/zs3.json" --predictions "$tmp/p3.csv" >"$out" 2>"$err"; check "zeroshot -np 3 (exit $?)" $?
cmp -s "$tmp/zs1.txt" "$out"; check "zeroshot -np 3: the same printed results" $?
cmp -s "$tmp/zs1.json" "$tmp/zs3.json" && cmp -s "$tmp/p1.csv" "$tmp/p3.csv"
check "zeroshot -np 3: the same JSON and predictions" $?
np 2 zeroshot --model "$tmp/model" >"$out" 2>"$err"; rc=$?
[ $rc = 2 ] && [ "$(grep -c 'medvlm zeroshot:' "$err")" = 1 ]
check "zeroshot -np 2 usage error: exit 2, said once (rank 0) (exit $rc)" $?
untimed() { sed -E 's/[0-9.]+ s\b//g' "$1" | grep -Ev '^(wrote|saved)'; } # no times, no output paths
A=(adapt --method clap --train "$tmp/ref.safetensors" --test "$tmp/ref.safetensors" --prompts "$E"
   --model "$tmp/model" --shots 4 --seed 2)
run "adapt, one process" 0 "${A[@]}" --out "$tmp/a1.safetensors"
cp "$out" "$tmp/a1.txt"
np 2 "${A[@]}" --out "$tmp/a2.safetensors" >"$out" 2>"$err"; check "adapt -np 2 (exit $?)" $?
cmp -s "$tmp/a1.safetensors" "$tmp/a2.safetensors"; check "adapt -np 2: the same adapter file" $?
diff <(untimed "$tmp/a1.txt") <(untimed "$out") >/dev/null
check "adapt -np 2: the same printed results" $?

# ---- finetune: data parallel
"$cli" init data --per-class 6 --size 96 --seed 0 "$tmp/test" >/dev/null
T=(finetune --model "$tmp/model" --prompts "$E" --images "$tmp/data/images"
   --labels "$tmp/data/labels.csv" --classes NC,G3,G4,G5 --peft lora --shots 4 --lr 1e-2
   --batch 8 --threads 1 --test "$tmp/test/labels.csv" --test-images "$tmp/test/images")
FILES="adapter_model.safetensors head.safetensors checkpoint.safetensors"
losses() { grep -o '^epoch [0-9]*/[0-9]* loss [0-9.]*' "$1"; }
run "finetune, one process" 0 "${T[@]}" --epochs 4 --out "$tmp/ft"
cp "$out" "$tmp/ft.out"; cp "$err" "$tmp/ft.err"
np 1 "${T[@]}" --epochs 4 --out "$tmp/ft1" >"$out" 2>"$err"; check "finetune -np 1 (exit $?)" $?
for f in $FILES; do
  cmp -s "$tmp/ft/$f" "$tmp/ft1/$f"; check "finetune -np 1 = one process, bit for bit: $f" $?
done
for n in 2 3; do
  np $n "${T[@]}" --epochs 4 --out "$tmp/ft$n" >"$out" 2>"$err"; check "finetune -np $n (exit $?)" $?
  for f in $FILES; do
    "$cmpst" "$tmp/ft/$f" "$tmp/ft$n/$f" 1e-6 1e-4 >/dev/null
    check "finetune -np $n ~ one process (1e-6 + 1e-4 |ref|): $f" $?
  done
  diff <(losses "$tmp/ft.err") <(losses "$err") >/dev/null; check "finetune -np $n: the same losses (6 digits)" $?
  [ "$(losses "$err" | wc -l)" = 4 ]; check "finetune -np $n: one loss line an epoch (rank 0's)" $?
  diff <(grep -A20 '^fine-tuned' "$tmp/ft.out" | untimed /dev/stdin) \
    <(grep -A20 '^fine-tuned' "$out" | untimed /dev/stdin) >/dev/null
  check "finetune -np $n: the same test metrics" $?
done
np 2 "${T[@]}" --epochs 4 --out "$tmp/ft2b" >/dev/null 2>&1
for f in $FILES; do
  cmp -s "$tmp/ft2/$f" "$tmp/ft2b/$f"; check "finetune -np 2 twice: bit for bit the same $f" $?
done
# batches of 2 on 3 ranks: rank 0's slice is empty (a zero gradient in the sum)
run "finetune --batch 2, one process" 0 "${T[@]}" --epochs 1 --batch 2 --out "$tmp/fts"
np 3 "${T[@]}" --epochs 1 --batch 2 --out "$tmp/fts3" >"$out" 2>"$err"; check "finetune -np 3 --batch 2 (exit $?)" $?
for f in $FILES; do
  "$cmpst" "$tmp/fts/$f" "$tmp/fts3/$f" 1e-6 1e-4 >/dev/null
  check "finetune -np 3 --batch 2 (a rank without an image) ~ one process: $f" $?
done
np 2 "${T[@]}" --epochs 4 --stop-after 2 --out "$tmp/ftr" >"$out" 2>"$err"
check "finetune -np 2 --stop-after 2 (exit $?)" $?
np 3 "${T[@]}" --epochs 4 --resume --out "$tmp/ftr" >"$out" 2>"$err"; check "finetune resumed with -np 3 (exit $?)" $?
has "resumed with -np 3" "resuming $tmp/ftr after epoch 2 of 4" "$err"
for f in $FILES; do
  "$cmpst" "$tmp/ft/$f" "$tmp/ftr/$f" 1e-6 1e-4 >/dev/null
  check "finetune -np 2 then -np 3 ~ one process: $f" $?
done

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
