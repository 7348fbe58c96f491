#!/usr/bin/env bash
# Fine-tuning runs used elsewhere: `medvlm merge`, and `--run RUN_DIR` of embed, features,
# zeroshot and predict, on a generated tiny model and data set; a run of another model and
# broken run folders are refused with the folder named. (The numbers - merged = unmerged,
# LoRA B = 0 = base - are checked in tests/unit/test_peft.c.)
set -u
cli=${MEDVLM_CLI:?run through ctest}
src=${MEDVLM_SOURCE_DIR:?run through ctest}
. "$(dirname "$0")/harness.sh" # check, run, has, hasnt; $tmp, $out, $err

M=$tmp/model D=$tmp/data
run "init model" 0 init model --preset tiny --seed 0 "$M"
run "init other model" 0 init model --preset tiny --seed 9 "$tmp/other"
run "init data" 0 init data --per-class 10 --size 64 --seed 1 "$D"
DATA="--images $D/images --labels $D/labels.csv --classes NC,G3,G4,G5"
P=$src/examples/sicapv2_ensemble.json
run "finetune lora" 0 finetune --model "$M" --peft lora $DATA --prompts "$P" --shots 4 --epochs 2 \
    --lr 1e-2 --out "$tmp/lora"
run "finetune bias" 0 finetune --model "$M" --peft bias $DATA --prompts "$P" --shots 4 --epochs 2 \
    --lr 1e-2 --out "$tmp/bias"
run "finetune head" 0 finetune --model "$M" --peft head $DATA --prompts "$P" --shots 4 --epochs 2 \
    --out "$tmp/head"
img=$(ls "$D"/images/* | head -n 2)

# merge: a complete model folder that loads and embeds
run "merge" 0 merge --model "$M" --run "$tmp/lora" --out "$tmp/merged"
has "merge" "^merged $tmp/lora into $M: $tmp/merged" "$out"
for f in config.json model.safetensors preprocessor_config.json tokenizer.json; do
  [ -f "$tmp/merged/$f" ]; check "merged folder has $f" $?
done
run "info merged" 0 info "$tmp/merged"
run "embed merged" 0 embed --model "$tmp/merged" $img --out "$tmp/e_merged.safetensors"
run "merge bias" 0 merge --model "$M" --run "$tmp/bias" --out "$tmp/merged_bias"

# --run on embed, features, zeroshot, predict
run "embed --run" 0 embed --model "$M" --run "$tmp/lora" $img --out "$tmp/e_run.safetensors"
has "embed --run" "2 image embeddings" "$out"
run "embed --run head" 0 embed --model "$M" --run "$tmp/head" $img --out "$tmp/e_head.safetensors"
run "embed base" 0 embed --model "$M" $img --out "$tmp/e_base.safetensors"
cmp -s "$tmp/e_head.safetensors" "$tmp/e_base.safetensors"
check "a head-only run leaves the encoder's embeddings as they were" $?
run "features --run" 0 features --model "$M" --run "$tmp/lora" $DATA --out "$tmp/f_run.safetensors"
grep -aq "fine-tuned: $tmp/lora" "$tmp/f_run.safetensors"; check "features record the run" $?
run "features base" 0 features --model "$M" $DATA --out "$tmp/f_base.safetensors"
run "predict --run" 0 predict --run "$tmp/lora" --features "$tmp/f_run.safetensors" \
    --predictions "$tmp/pred.csv"
has "predict --run" "^predict: fine-tuned head of $tmp/lora (4 classes, D" "$out"
has "predict --run" "^balanced accuracy" "$out"
[ "$(wc -l <"$tmp/pred.csv")" = 41 ]; check "predictions: header + 40 rows" $?
run "zeroshot --run" 0 zeroshot --model "$M" --run "$tmp/lora" --prompts "$P" \
    --features "$tmp/f_run.safetensors"
has "zeroshot --run" "^zero-shot, 40 images" "$out"

# refusals: features of the base model with the run's head, and the other way round
run "predict --run, base features" 1 predict --run "$tmp/lora" --features "$tmp/f_base.safetensors"
has "predict --run, base features" "embeddings of different models do not compare" "$err"
run "zeroshot base, run features" 1 zeroshot --model "$M" --prompts "$P" \
    --features "$tmp/f_run.safetensors"
has "zeroshot base, run features" "do not compare" "$err"
# a run of another model, named
run "run of another model" 1 embed --model "$tmp/other" --run "$tmp/lora" $img --out "$tmp/x.safetensors"
has "run of another model" "$tmp/lora was fine-tuned from the model $M (fingerprint" "$err"
run "merge another model" 1 merge --model "$tmp/other" --run "$tmp/lora" --out "$tmp/x"
[ ! -e "$tmp/x" ]; check "a refused merge writes nothing" $?
[ ! -e "$tmp/x.safetensors" ]; check "a refused embed writes nothing" $?
# broken run folders
run "no run" 1 embed --model "$M" --run "$tmp/nothere" $img --out "$tmp/x.safetensors"
has "no run" "$tmp/nothere: not a folder" "$err"
mkdir "$tmp/empty"
run "empty run" 1 features --model "$M" --run "$tmp/empty" $DATA --out "$tmp/x.safetensors"
has "empty run" "$tmp/empty: no adapter_model.safetensors or trained_params.safetensors" "$err"
cp -r "$tmp/lora" "$tmp/bad"
sed -i 's/"r":.*/"r": 0,/' "$tmp/bad/adapter_config.json"
run "r = 0" 1 embed --model "$M" --run "$tmp/bad" $img --out "$tmp/x.safetensors"
has "r = 0" "adapter_config.json: r = 0" "$err"
cp "$tmp/lora/adapter_config.json" "$tmp/bad/"
sed -i 's/"r":.*/"r": 8,/' "$tmp/bad/adapter_config.json"
run "r = 8 for rank-4 tensors" 1 embed --model "$M" --run "$tmp/bad" $img --out "$tmp/x.safetensors"
has "r = 8" "is not \[8, " "$err"
head -c 100 "$tmp/lora/adapter_model.safetensors" >"$tmp/bad/adapter_model.safetensors"
cp "$tmp/lora/adapter_config.json" "$tmp/bad/"
run "truncated adapter" 1 embed --model "$M" --run "$tmp/bad" $img --out "$tmp/x.safetensors"
has "truncated adapter" "$tmp/bad/adapter_model.safetensors" "$err"
# usage
run "merge without --run" 2 merge --model "$M" --out "$tmp/x"
has "merge without --run" "--model, --run and --out are all required" "$err"
run "predict with both" 2 predict --run "$tmp/lora" --adapter x --features "$tmp/f_run.safetensors"

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
