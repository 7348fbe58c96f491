#!/usr/bin/env bash
# demo.sh MEDVLM [MODEL_DIR] [SICAPV2_DIR]: the PEFT-MedVLMs tutorial's main job in medvlm
# form: features -> zero-shot (single prompt and prompt ensemble) -> metrics, then few-shot
# black-box adapters on the tutorial's K-shot samples, then fine-tuning of the vision encoder
# with LoRA on the same K-shot images (the tutorial's last part).
# Without MODEL_DIR/SICAPV2_DIR it generates a tiny RANDOM-weight model and a synthetic image
# set, so it runs anywhere without a download (and its numbers are chance level).
set -euo pipefail
medvlm=$1 model=${2:-} data=${3:-}
here=$(cd "$(dirname "$0")/.." && pwd)
out=${DEMO_OUT:-demo-out}
mkdir -p "$out"
t0=$(date +%s)
if [ -z "$model" ]; then
  echo "== no MODEL given: generating a tiny CLIP with RANDOM weights"
  echo "   (its predictions are meaningless; point MODEL= at vinid/plip for real results)"
  model=$out/tiny-random-clip
  "$medvlm" init model --preset tiny --seed 0 --force "$model" # the demo's own folder
fi
if [ -z "$data" ]; then
  echo "== no DATA given: generating a synthetic labelled image set (classes NC, G3, G4, G5)"
  "$medvlm" init data --per-class 16 --size 224 --seed 0 --force "$out/synthetic-test" >/dev/null
  "$medvlm" init data --per-class 24 --size 224 --seed 1 --force "$out/synthetic-train" >/dev/null
  test_images=$out/synthetic-test/images; test=$out/synthetic-test/labels.csv
  train_images=$out/synthetic-train/images; train=$out/synthetic-train/labels.csv
  shots=8
  # a few epochs at a high learning rate: the loss visibly goes down within seconds
  ft_args=(--epochs 8 --lr 1e-2 --batch 8)
  ft_out=$out/finetune-lora
  rm -rf "$ft_out" # a fresh run each time (finetune never overwrites a run folder)
else
  test_images=$data/images; train_images=$data/images
  train=$data/partition/Test/Train.xlsx
  test=$data/partition/Test/Test.xlsx
  shots=16
  # the tutorial's settings (16 shots, seed 1, the command's defaults); --resume continues
  # an interrupted run and makes a rerun of the demo reuse a finished one
  ft_args=(--resume)
  ft_out=$out/finetune-lora-16shot
fi
echo "== model"
"$medvlm" info "$model"
echo
echo "== features of the test set (resumable: rerun with --resume after an interruption)"
"$medvlm" features --model "$model" --images "$test_images" --labels "$test" \
  --classes NC,G3,G4,G5 --out "$out/test_features.safetensors"
echo
echo "== zero-shot, one prompt per class"
"$medvlm" zeroshot --model "$model" --prompts "$here/examples/sicapv2_single.json" \
  --features "$out/test_features.safetensors" --json "$out/zeroshot_single.json"
echo
echo "== zero-shot, prompt ensemble (templates x descriptions)"
"$medvlm" zeroshot --model "$model" --prompts "$here/examples/sicapv2_ensemble.json" \
  --features "$out/test_features.safetensors" --json "$out/zeroshot_ensemble.json" \
  --predictions "$out/zeroshot_ensemble_predictions.csv" \
  --save-prototypes "$out/prototypes_ensemble.safetensors"
echo
echo "== features of the training set, then $shots-shot adapters on the tutorial's samples"
"$medvlm" features --model "$model" --images "$train_images" --labels "$train" \
  --classes NC,G3,G4,G5 --out "$out/train_features.safetensors"
"$medvlm" adapt --methods all --train "$out/train_features.safetensors" \
  --test "$out/test_features.safetensors" --prompts "$here/examples/sicapv2_ensemble.json" \
  --model "$model" --shots "$shots" --seeds 1,2,3 --json "$out/adapters.json"
echo
echo "== fine-tuning the vision encoder: LoRA (rank 4 on q, k, v), $shots shots, the same samples"
"$medvlm" finetune --model "$model" --peft lora --images "$train_images" --labels "$train" \
  --classes NC,G3,G4,G5 --prompts "$here/examples/sicapv2_ensemble.json" --shots "$shots" \
  --seed 1 "${ft_args[@]}" --test "$test" --test-images "$test_images" \
  --json "$out/finetune_metrics.json" --out "$ft_out"
echo
echo "== done in $(( $(date +%s) - t0 )) s; outputs in $out/"
