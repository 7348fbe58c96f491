#!/usr/bin/env bash
# --precision fp32|bf16|auto (docs/precision.md) on a generated tiny model and data set:
# zeroshot runs at each; auto gives what `medvlm info` says it resolves to on this CPU, bit for
# bit; bf16 predicts what fp32 does, with every probability within 0.005 (the tiny random model
# sits at chance level and puts every tile in one class with a wide margin, so the
# probabilities are what tell a broken bf16 path apart; the class agreement on images with
# varied, narrow predictions is tests/unit/test_precision.c's, on the golden set). Also: a
# precision that does not exist is a usage error naming the choices, every command that runs
# an encoder offers the option, fine-tuning at bf16 follows fp32's losses and records its
# precision (a resume at another is refused), and bench names the precision it ran.
set -u
cli=${MEDVLM_CLI:?run through ctest}
src=${MEDVLM_SOURCE_DIR:?run through ctest}
. "$(dirname "$0")/harness.sh" # check, run, has, hasnt; $tmp, $out, $err

M=$tmp/model D=$tmp/data
run "init model" 0 init model --preset tiny --seed 0 "$M"
run "init data" 0 init data --per-class 10 --size 64 --seed 1 "$D"
DATA="--images $D/images --labels $D/labels.csv --classes NC,G3,G4,G5"
P=$src/examples/sicapv2_ensemble.json

for p in fp32 bf16 auto; do
  run "zeroshot --precision $p" 0 zeroshot --model "$M" --prompts "$P" $DATA --precision $p \
      --predictions "$tmp/pred_$p.csv"
  cp "$out" "$tmp/zs_$p.txt"
  has "zeroshot --precision $p" "^zero-shot, 40 images, 4 classes" "$tmp/zs_$p.txt"
  [ "$(wc -l <"$tmp/pred_$p.csv")" = 41 ]; check "$p: header + 40 prediction rows" $?
done

# auto is whichever precision the CPU's rule picks (medvlm info prints it): the same bits
run "info" 0 info "$M"
auto=$(sed -n 's/^precision auto: \(fp32\|bf16\) (.*)$/\1/p' "$out")
[ -n "$auto" ]; check "info: 'precision auto: fp32|bf16 (reason)'" $?
run "info --json" 0 info --json "$M"
grep -q "\"precision_auto\":\"$auto\",\"precision_auto_reason\":\"[^\"]" "$out"
check "info --json: precision_auto $auto with its reason" $?
if [ -n "$auto" ]; then
  cmp -s "$tmp/pred_auto.csv" "$tmp/pred_$auto.csv" && cmp -s "$tmp/zs_auto.txt" "$tmp/zs_$auto.txt"
  check "auto ($auto here) = --precision $auto, bit for bit" $?
fi

# bf16 vs fp32: the same class for every image (so the same printed metrics), probabilities
# within 0.005 (measured: <= 4e-4); and not the same bits, or bf16 did not run
cmp -s "$tmp/zs_fp32.txt" "$tmp/zs_bf16.txt"; check "bf16 prints fp32's metrics" $?
paste -d, "$tmp/pred_fp32.csv" "$tmp/pred_bf16.csv" | awk -F, -v out="$tmp/cmp" '
  NR == 1 { next }
  { if ($1 != $8) bad++
    if ($3 != $10) flips++
    for (i = 4; i <= 7; i++) { d = $i - $(i + 7); if (d < 0) d = -d; if (d > m) m = d } }
  END { printf "images %d, flips %d, max |p_bf16 - p_fp32| %g\n", NR - 1, flips, m > out
        exit !(NR == 41 && !bad && !flips && m <= 0.005) }'
rc=$?
check "bf16 predicts fp32's classes, probabilities within 0.005 ($(cat "$tmp/cmp"))" $rc
! cmp -s "$tmp/pred_fp32.csv" "$tmp/pred_bf16.csv"; check "bf16 probabilities are not fp32's bits" $?

# a precision that does not exist: usage error (2) naming the choices, nothing run
run "--precision fp16" 2 zeroshot --model "$M" --prompts "$P" $DATA --precision fp16
has "--precision fp16" "--precision 'fp16': expected fp32, bf16 or auto" "$err"
[ ! -s "$out" ]; check "--precision fp16: nothing on stdout" $?

# offered by every command that runs an encoder, fine-tuning included
for c in embed features zeroshot adapt serve bench finetune; do
  run "$c --help" 0 "$c" --help
  has "$c --help" "--precision P" "$out"
done

# fine-tuning at bf16 (fp32 master weights): the run fp32 makes, with every epoch's loss
# within 1% of fp32's and other parameter bits; run.json records the precision as resolved,
# and resuming at another precision is refused, naming it, with the run left as it was
FT="--model $M --prompts $P --images $D/images --labels $D/labels.csv --classes NC,G3,G4,G5"
FT="$FT --peft lora --shots 4 --epochs 3 --lr 1e-2 --batch 8"
for p in fp32 bf16 auto; do
  run "finetune --precision $p" 0 finetune $FT --precision $p --out "$tmp/ft_$p"
  want=$p; [ "$p" = auto ] && want=$auto
  has "finetune --precision $p" "^fine-tuning $M (lora, $want): " "$out"
  has "finetune --precision $p: run.json" "\"--precision\":[[:space:]]*\"$want\"" "$tmp/ft_$p/run.json"
  grep '^epoch' "$err" | awk '{ print $4 }' >"$tmp/ft_$p.loss"
done
[ "$(wc -l <"$tmp/ft_bf16.loss")" = 3 ] && paste "$tmp/ft_fp32.loss" "$tmp/ft_bf16.loss" | awk '
  { d = $2 - $1; if (d < 0) d = -d; if (d > 0.01 * $1) bad++ } END { exit bad > 0 }'
check "finetune bf16: every epoch's loss within 1% of fp32's ($(paste -sd' ' "$tmp/ft_bf16.loss") vs $(paste -sd' ' "$tmp/ft_fp32.loss"))" $?
! cmp -s "$tmp/ft_fp32/adapter_model.safetensors" "$tmp/ft_bf16/adapter_model.safetensors"
check "finetune bf16: the adapter is not fp32's bits" $?
cp "$tmp/ft_fp32/checkpoint.safetensors" "$tmp/ck_before"
run "finetune --resume at another precision" 1 finetune $FT --precision bf16 --epochs 4 \
  --resume --out "$tmp/ft_fp32"
has "resume at bf16" "--precision was 'fp32', this run has 'bf16'" "$err"
cmp -s "$tmp/ck_before" "$tmp/ft_fp32/checkpoint.safetensors"; check "refused resume: checkpoint unchanged" $?
# an interrupted bf16 run resumed = the uninterrupted one, byte for byte (full: the trained
# weights' bf16 copies are made again from the checkpoint's fp32 values)
FULL="--model $M --prompts $P --images $D/images --labels $D/labels.csv --classes NC,G3,G4,G5"
FULL="$FULL --peft full --shots 4 --epochs 3 --lr 1e-2 --batch 8 --precision bf16"
run "finetune full bf16" 0 finetune $FULL --out "$tmp/fa"
run "finetune full bf16, stopped after epoch 1" 0 finetune $FULL --stop-after 1 --out "$tmp/fb"
run "finetune full bf16, resumed" 0 finetune $FULL --resume --out "$tmp/fb"
cmp -s "$tmp/fa/trained_params.safetensors" "$tmp/fb/trained_params.safetensors"
check "finetune full bf16: stopped + resumed = uninterrupted, byte for byte" $?
run "finetune --precision fp16" 2 finetune $FT --precision fp16 --out "$tmp/ft_x"
has "finetune --precision fp16" "--precision expects one of fp32/bf16/auto, got 'fp16'" "$err"

# bench names the precision on every result line
run "bench bf16" 0 bench --precision bf16 --only text --batch 2 --reps 1 --threads 1 --json
n=$(grep -c '"bench": "text"' "$out")
[ "$n" -ge 1 ] && [ "$(grep '"bench": "text"' "$out" | grep -c '"precision": "bf16"')" = "$n" ]
rc=$?
check "bench: every text line carries \"precision\": \"bf16\" ($n lines)" $rc

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
