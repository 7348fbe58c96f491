#!/usr/bin/env bash
# `medvlm finetune` on a generated tiny model and synthetic images: the loss printed per epoch
# and going down, the run folder's files (peft's adapter format, key names, run.json), every
# PEFT mode, --resume (an interrupted run resumed = an uninterrupted one, byte for byte),
# thread-count independence, --val with early stopping, the terminal progress bar, and the
# bad-input catalogue (one line naming the flag or file, and nothing already written lost).
set -u
cli=${MEDVLM_CLI:?run through ctest}
src=${MEDVLM_SOURCE_DIR:?run through ctest}
. "$(dirname "$0")/harness.sh" # check, run, has, hasnt; $tmp, $out, $err
# the tensor names of a safetensors file, one a line: 8-byte little-endian header length + JSON
st_keys() {
  local n
  n=$(od -An -t u8 -N 8 "$1" | tr -d ' ')
  tail -c +9 "$1" | head -c "$n" | grep -o '"[^"]*":{"dtype"' | sed 's/^"//; s/":{"dtype"$//' |
    grep -v '^__metadata__$' | sort
}

"$cli" init model --preset tiny --seed 0 "$tmp/model" >/dev/null; check "init model" $?
"$cli" init data --per-class 12 --size 96 --seed 1 "$tmp/train" >/dev/null; check "init train" $?
"$cli" init data --per-class 6 --size 96 --seed 0 "$tmp/test" >/dev/null; check "init test" $?
M="--model $tmp/model --prompts $src/examples/sicapv2_ensemble.json"
D="--images $tmp/train/images --labels $tmp/train/labels.csv"
T="--test $tmp/test/labels.csv --test-images $tmp/test/images"

# ---- LoRA: the loss per epoch, going down; the files of the run folder
run "lora" 0 finetune $M $D --classes NC,G3,G4,G5 --peft lora --rank 4 --lora-alpha 8 \
  --shots 4 --epochs 8 --lr 1e-2 --batch 8 $T --json "$tmp/metrics.json" --out "$tmp/lora"
cp "$out" "$tmp/lora.out"; cp "$err" "$tmp/lora.err"
has "lora" "^fine-tuning $tmp/model (lora, fp32): [0-9]* trainable parameters, 16 training images, 0 validation, 8 epochs of batch 8" "$out"
[ "$(grep -c '^epoch [1-8]/8 loss [0-9.]* (' "$err")" = 8 ]; check "lora: one loss line per epoch" $?
hasnt "lora: no progress bar off a terminal" $'\r' "$err"
awk '/^epoch 1\/8 loss/ { f = $4 } /^epoch 8\/8 loss/ { l = $4 } END { exit !(f > 0 && l < 0.8 * f) }' "$err"
check "lora: the loss goes down (epoch 8 < 0.8 x epoch 1)" $?
has "lora" "^trained 8 epochs, 16 steps: loss [0-9.]* -> [0-9.]*$" "$out"
has "lora" "^wrote $tmp/lora: adapter_model.safetensors, adapter_config.json, head.safetensors, run.json" "$out"
[ "$(cd "$tmp/lora" && ls | tr '\n' ' ')" = "adapter_config.json adapter_model.safetensors checkpoint.safetensors head.safetensors run.json " ]
check "lora: exactly the run's files (no temporary left)" $?
c=$tmp/lora/adapter_config.json
has "adapter_config" '"peft_type":[[:space:]]*"LORA"' "$c"
has "adapter_config" '"r":[[:space:]]*4,' "$c"
has "adapter_config" '"lora_alpha":[[:space:]]*8,' "$c"
has "adapter_config" '"target_modules":[[:space:]]*"vision_model.*(q_proj|k_proj|v_proj)"' "$c"
st_keys "$tmp/lora/adapter_model.safetensors" >"$tmp/keys"
[ "$(wc -l <"$tmp/keys")" = 12 ]; check "adapter: 2 layers x q,k,v x A,B = 12 tensors" $?
has "adapter keys" '^base_model\.model\.vision_model\.encoder\.layers\.0\.self_attn\.q_proj\.lora_A\.weight$' "$tmp/keys"
has "adapter keys" '^base_model\.model\.vision_model\.encoder\.layers\.1\.self_attn\.v_proj\.lora_B\.weight$' "$tmp/keys"
! grep -vq '^base_model\.model\.vision_model\.encoder\.layers\.[01]\.self_attn\.[qkv]_proj\.lora_[AB]\.weight$' "$tmp/keys"
check "adapter keys: nothing but peft's LoRA names" $?
r=$tmp/lora/run.json
has "run.json" '"settings":' "$r"
has "run.json" '"--peft":[[:space:]]*"lora"' "$r"
has "run.json" '"--lr":[[:space:]]*"0.01"' "$r"
has "run.json" '"--lora-targets":[[:space:]]*"q,k,v"' "$r"
has "run.json" '"--precision":[[:space:]]*"fp32"' "$r"
has "run.json" '"model_fingerprint":[[:space:]]*"[0-9a-f]\{16\}"' "$r"
fp=$(grep -o '"model_fingerprint":[[:space:]]*"[0-9a-f]*"' "$r" | grep -o '[0-9a-f]\{16\}')
grep -aq "$fp" "$tmp/lora/head.safetensors"; check "run.json fingerprint = the head file's" $?
[ "$(grep -c '"loss":' "$r")" = 8 ]; check "run.json: 8 epoch losses" $?
l1=$(grep -m1 '^epoch 1/8' "$tmp/lora.err" | awk '{ print $4 }')
awk -v p="$l1" '/"loss":/ { gsub(/[",]/, "", $2); d = $2 - p; exit !(d < 1e-6 && d > -1e-6) }' "$r"
check "run.json: epoch 1's loss = the printed one" $?
has "run.json" '"test":' "$r"
aca=$(grep '^balanced accuracy' "$tmp/lora.out" | awk '{ print $3 }')
grep -Eq '"balanced_accuracy":[[:space:]]*'"${aca%.*}" "$r"; check "run.json: printed balanced accuracy ($aca)" $?
has "--json" '"balanced_accuracy"' "$tmp/metrics.json"
# the K-shot images trained on are `medvlm sample`'s for the same seed, in its order
names() { # names KEY RUN.json: the strings of one array, one a line
  awk -v k="\"$1\":" '$1 == k { on = 1 } on { print } on && /]/ { exit }' "$2" |
    grep -o '"[^"]*\.jpg"' | tr -d '"'
}
"$cli" sample --labels "$tmp/train/labels.csv" --classes NC,G3,G4,G5 --shots 4 --seed 1 >"$tmp/sample4"
names train_image_names "$r" >"$tmp/trained"
[ -s "$tmp/trained" ] && cmp -s "$tmp/sample4" "$tmp/trained"
check "run.json: trained on medvlm sample's 4-shot images" $?
has "lora test" "^fine-tuned (lora), 24 test images of $tmp/test/labels.csv, 4 classes" "$tmp/lora.out"

# the metrics table is zeroshot's: the head at lr 0 predicts exactly as zero-shot does
run "head lr 0" 0 finetune $M $D --peft head --lr 0 --shots 2 --epochs 1 $T --out "$tmp/h0" \
    --report "$tmp/ft.html"
sed -n '/^fine-tuned (head)/,/^wrote /p' "$out" | sed '1d;$d' >"$tmp/ft_table"
aca=$(sed -n 's/^balanced accuracy  *\([0-9.]*\) %$/\1/p' "$out")
has "finetune --report: the ACA of stdout ($aca)" "id=\"balanced-accuracy\">$aca %<" "$tmp/ft.html"
has "finetune --report: the loss per epoch" 'id="loss"' "$tmp/ft.html"
xmllint --noout "$tmp/ft.html"; check "finetune --report: well-formed" $?
run "zeroshot" 0 zeroshot $M --images "$tmp/test/images" --labels "$tmp/test/labels.csv"
tail -n +2 "$out" >"$tmp/zs_table"
[ -s "$tmp/zs_table" ] && cmp -s "$tmp/ft_table" "$tmp/zs_table"
check "finetune's metrics table = zeroshot's (head, lr 0)" $?

# ---- the other modes: trained_params.safetensors under Hugging Face names
run "ln" 0 finetune $M $D --peft ln --shots 2 --epochs 1 --out "$tmp/ln"
st_keys "$tmp/ln/trained_params.safetensors" >"$tmp/keys"
has "ln keys" '^vision_model\.encoder\.layers\.0\.layer_norm1\.weight$' "$tmp/keys"
[ "$(wc -l <"$tmp/keys")" = 8 ]; check "ln: 2 layers x 2 LayerNorms x weight, bias" $?
hasnt "ln keys: pre/post LayerNorm frozen" 'layrnorm\|post_layernorm' "$tmp/keys"
[ ! -e "$tmp/ln/adapter_model.safetensors" ]; check "ln: no adapter_model" $?
run "bias" 0 finetune $M $D --peft bias --shots 2 --epochs 1 --out "$tmp/bias"
st_keys "$tmp/bias/trained_params.safetensors" >"$tmp/keys"
has "bias keys" '^vision_model\.encoder\.layers\.1\.mlp\.fc2\.bias$' "$tmp/keys"
! grep -vq '\.bias$' "$tmp/keys"; check "bias: biases only" $?
run "full" 0 finetune $M $D --peft full --shots 2 --epochs 1 --out "$tmp/full"
st_keys "$tmp/full/trained_params.safetensors" >"$tmp/keys"
has "full keys" '^vision_model\.embeddings\.patch_embedding\.weight$' "$tmp/keys"
has "full keys" '^visual_projection\.weight$' "$tmp/keys"
hasnt "full keys: the text tower frozen" '^text_model' "$tmp/keys"
run "head" 0 finetune $M $D --peft head --shots 2 --epochs 1 --out "$tmp/head"
has "head" "^wrote $tmp/head: head.safetensors, run.json" "$out"
[ -s "$tmp/head/head.safetensors" ] && [ ! -e "$tmp/head/trained_params.safetensors" ]
check "head: head.safetensors only" $?

# ---- --resume: interrupted after epoch 2 of 4 and resumed = uninterrupted, byte for byte
R="$M $D --peft lora --shots 4 --lr 1e-2 --batch 8"
run "4 epochs" 0 finetune $R --epochs 4 --out "$tmp/full4"
run "stop after 2" 0 finetune $R --epochs 4 --stop-after 2 --out "$tmp/int"
has "stop after 2" "^stopped after epoch 2 of 4 (--stop-after)" "$out"
[ "$(grep -c '^epoch' "$err")" = 2 ]; check "stop after 2: two epochs run" $?
[ -s "$tmp/int/checkpoint.safetensors" ] && [ ! -e "$tmp/int/adapter_model.safetensors" ]
check "stop after 2: a checkpoint, no final files" $?
run "resume" 0 finetune $R --epochs 4 --resume --out "$tmp/int"
has "resume" "resuming $tmp/int after epoch 2 of 4" "$err"
has "resume" "^epoch 3/4 loss" "$err"
hasnt "resume: epochs 1-2 not rerun" "^epoch 1/4" "$err"
for f in adapter_model.safetensors head.safetensors checkpoint.safetensors; do
  cmp -s "$tmp/full4/$f" "$tmp/int/$f"; check "resumed = uninterrupted: $f" $?
done
diff <(grep '"loss"' "$tmp/full4/run.json") <(grep '"loss"' "$tmp/int/run.json") >/dev/null
check "resumed = uninterrupted: run.json's losses" $?
# a finished run given more epochs continues the same trajectory
run "2 epochs" 0 finetune $R --epochs 2 --out "$tmp/ext"
run "extended to 4" 0 finetune $R --epochs 4 --resume --out "$tmp/ext"
cmp -s "$tmp/full4/adapter_model.safetensors" "$tmp/ext/adapter_model.safetensors"
check "2 epochs + 2 resumed = 4 epochs" $?
run "resume, fewer epochs" 1 finetune $R --epochs 3 --resume --out "$tmp/ext"
has "resume, fewer epochs" "is after epoch 4, beyond --epochs 3: give --epochs 4 or more" "$err"
run "resume, nothing yet" 0 finetune $R --epochs 1 --resume --out "$tmp/fresh"
has "resume, nothing yet" "no checkpoint $tmp/fresh/checkpoint.safetensors yet: starting from the beginning" "$err"

# ---- the thread count is a speed choice only
run "threads 1" 0 finetune $R --epochs 2 --threads 1 --out "$tmp/t1"
run "threads 2" 0 finetune $R --epochs 2 --threads 2 --out "$tmp/t2"
for f in adapter_model.safetensors head.safetensors; do
  cmp -s "$tmp/t1/$f" "$tmp/t2/$f"; check "threads 1 = threads 2: $f" $?
done

# ---- --val: the validation loss each epoch, early stopping, the best epoch kept
run "val" 0 finetune $M $D --shots 4 --val 2 --epochs 6 --lr 0.2 --patience 1 --out "$tmp/val"
has "val" ", 16 training images, 8 validation," "$out"
has "val" "^epoch 1/6 loss [0-9.]* val_loss [0-9.]* best (" "$err"
has "val" "early stop after epoch [0-9]: no better validation loss for 1 epoch (best: epoch [0-9])" "$err"
has "val" "best val_loss [0-9.]* at epoch [0-9] (its parameters kept)" "$out"
has "val run.json" '"val_loss":' "$tmp/val/run.json"
has "val run.json" '"best_epoch":' "$tmp/val/run.json"
# --val K2 takes the next K2 of each class in the sampler's order: shots 4 + val 2 = sample 6
"$cli" sample --labels "$tmp/train/labels.csv" --classes NC,G3,G4,G5 --shots 6 --seed 1 >"$tmp/sample6"
names train_image_names "$tmp/val/run.json" >"$tmp/trained"
cmp -s "$tmp/sample4" "$tmp/trained"; check "val: the training images unchanged by --val" $?
names val_image_names "$tmp/val/run.json" >"$tmp/validated"
awk 'NR % 6 == 5 || NR % 6 == 0' "$tmp/sample6" | cmp -s - "$tmp/validated"
check "val: the next 2 of each class" $?
run "val resume stays stopped" 0 finetune $M $D --shots 4 --val 2 --epochs 6 --lr 0.2 --patience 1 --resume --out "$tmp/val"
hasnt "val resume stays stopped" "^epoch" "$err"

# ---- the progress bar on a terminal
if command -v script >/dev/null 2>&1; then
  script -qec "$cli finetune $R --epochs 2 --out $tmp/tty" "$tmp/tty.log" >/dev/null 2>&1
  check "tty run" $?
  has "tty bar" 'epoch 1/2 \[####################\] 2/2 loss' "$tmp/tty.log"
  has "tty bar" 'ETA' "$tmp/tty.log"
  has "tty epoch line" 'epoch 2/2 loss [0-9.]* (' "$tmp/tty.log"
fi

# ---- bad input: one line naming the flag or file, exit 2 (usage) or 1, nothing lost
run "rank 0" 2 finetune $R --rank 0 --epochs 1 --out "$tmp/x"
has "rank 0" "--rank expects an integer in 1..4096, got '0'" "$err"
run "unknown peft" 2 finetune $M $D --peft lorra --shots 2 --out "$tmp/x"
has "unknown peft" '--peft: unknown PEFT mode "lorra" (expected one of head, ln, ln-all, bias, lora, full)' "$err"
run "unknown target" 2 finetune $R --lora-targets q,z --out "$tmp/x"
has "unknown target" '--lora-targets: unknown LoRA target "z" (expected a comma-separated list of q, k, v, o, fc1, fc2)' "$err"
run "rank without lora" 2 finetune $M $D --peft ln --rank 8 --shots 2 --out "$tmp/x"
has "rank without lora" "--rank goes with --peft lora, not --peft ln" "$err"
run "too many shots" 1 finetune $M $D --shots 13 --out "$tmp/x"
has "too many shots" "class 'NC' has 12 images in $tmp/train/labels.csv, fewer than --shots 13$" "$err"
run "val too many" 1 finetune $M $D --shots 4 --val 9 --out "$tmp/x"
has "val too many" "class 'NC' has 12 images in $tmp/train/labels.csv, fewer than --shots 4 + --val 9 = 13" "$err"
run "json without test" 2 finetune $R --json "$tmp/x.json" --out "$tmp/x"
has "json without test" "--json writes the test metrics: give --test" "$err"
run "skip-bad" 2 finetune $R --skip-bad --out "$tmp/x"
has "skip-bad" "--skip-bad does not apply" "$err"
run "missing test table" 1 finetune $R --test "$tmp/nope.csv" --out "$tmp/x"
has "missing test table" "$tmp/nope.csv" "$err"
[ ! -e "$tmp/x" ]; check "errors before training create no run folder" $?
# a run folder is never overwritten by a new run, nor touched by a refused --resume
cp "$tmp/full4/checkpoint.safetensors" "$tmp/ck.orig"
cp "$tmp/full4/adapter_model.safetensors" "$tmp/ad.orig"
run "existing run" 1 finetune $R --epochs 4 --out "$tmp/full4"
has "existing run" "--out $tmp/full4 already holds a run ($tmp/full4/checkpoint.safetensors): add --resume" "$err"
run "other settings" 1 finetune $M $D --peft lora --shots 4 --lr 2e-2 --batch 8 --epochs 4 --resume --out "$tmp/full4"
has "other settings" "checkpoint.safetensors was made with other settings: --lr was '0.01', this run has '0.02'" "$err"
run "other mode" 1 finetune $M $D --peft bias --shots 4 --lr 1e-2 --batch 8 --epochs 4 --resume --out "$tmp/full4"
has "other mode" "--peft was 'lora', this run has 'bias'" "$err"
run "other shots" 1 finetune $M $D --peft lora --shots 3 --lr 1e-2 --batch 8 --epochs 4 --resume --out "$tmp/full4"
has "other shots" "--shots was '4', this run has '3'" "$err"
cmp -s "$tmp/ck.orig" "$tmp/full4/checkpoint.safetensors"; check "refused runs: checkpoint intact" $?
cmp -s "$tmp/ad.orig" "$tmp/full4/adapter_model.safetensors"; check "refused runs: adapter intact" $?
mkdir -p "$tmp/trunc" "$tmp/junk"
head -c 1000 "$tmp/ck.orig" >"$tmp/trunc/checkpoint.safetensors"
cp "$tmp/trunc/checkpoint.safetensors" "$tmp/trunc.orig"
run "truncated checkpoint" 1 finetune $R --epochs 4 --resume --out "$tmp/trunc"
has "truncated checkpoint" "$tmp/trunc/checkpoint.safetensors" "$err"
has "truncated checkpoint" "a corrupt or truncated checkpoint: left as it is" "$err"
cmp -s "$tmp/trunc.orig" "$tmp/trunc/checkpoint.safetensors"; check "truncated checkpoint kept" $?
printf 'not a checkpoint' >"$tmp/junk/checkpoint.safetensors"
run "corrupt checkpoint" 1 finetune $R --epochs 4 --resume --out "$tmp/junk"
has "corrupt checkpoint" "$tmp/junk/checkpoint.safetensors" "$err"
has "corrupt checkpoint" "not a checkpoint" "$tmp/junk/checkpoint.safetensors"
[ "$(ls "$tmp/junk")" = checkpoint.safetensors ]; check "corrupt checkpoint: nothing else written" $?
# missing required flags
run "no model" 2 finetune --prompts x.json $D --shots 2 --out "$tmp/x"
has "no model" "--model DIR is required" "$err"
run "no prompts" 2 finetune --model "$tmp/model" $D --shots 2 --out "$tmp/x"
has "no prompts" "--prompts P.json is required" "$err"
run "no labels" 2 finetune $M --shots 2 --out "$tmp/x"
has "no labels" "--labels TABLE is required" "$err"
run "no shots" 2 finetune $M $D --out "$tmp/x"
has "no shots" "--shots K is required" "$err"
run "no out" 2 finetune $M $D --shots 2
has "no out" "--out RUN_DIR is required" "$err"
run "no arguments" 2 finetune
run "missing model" 1 finetune --model "$tmp/nope" --prompts "$src/examples/sicapv2_ensemble.json" $D --shots 2 --out "$tmp/x"
has "missing model" "$tmp/nope" "$err"
[ ! -s "$out" ]; check "errors print nothing on stdout" $?
run "help" 0 finetune --help
has "help" "--stop-after E" "$out"

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
