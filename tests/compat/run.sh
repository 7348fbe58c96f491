#!/usr/bin/env bash
# tests/compat/run.sh [MEDVLM]: medvlm's fine-tuning files against the real Python stack
# (`make compat`; never run by CI or ctest: it needs PyPI and a few GB of wheels).
#
# With MEDVLM (default build/medvlm) it makes a tiny random-weight CLIP, a synthetic image set,
# two LoRA runs (q,k,v rank 4 alpha 4; all six targets rank 2 alpha 8), a LayerNorm and a bias
# run, each LoRA run merged into a new model folder, and medvlm's pixels and embeddings of two
# image sets; then check_compat.py loads them with
# transformers' CLIPModel / CLIPImageProcessor / CLIPTokenizer and peft's PeftModel and compares
# (max |diff| <= 1e-4 for embeddings). Exit status 0 when every check passes, 1 otherwise.
#
#   COMPAT_VENV  the Python venv (default /tmp/medvlm-compat-venv): reused when it already has
#                the pinned versions below, created and filled from PyPI when it does not exist
#   COMPAT_OUT   the scratch folder for medvlm's outputs (default: a fresh mktemp -d; kept)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
medvlm=$(realpath "${1:-$root/build/medvlm}")
venv=${COMPAT_VENV:-/tmp/medvlm-compat-venv}
pins=(torch==2.15.0 transformers==5.25.0 peft==0.21.2)

# ---- the venv: reuse one with the pinned versions, else create it (PyPI only) ----
# pillow: CLIPImageProcessor resizes with PIL, and torch, transformers and peft do not pull it
# in. A reused venv without it is left untouched: pillow goes to a side folder on PYTHONPATH.
py_has() { # MODULE[==VERSION]...: the venv imports each (at that version, local tag ignored)
  "$venv/bin/python" - "$@" <<'EOF' 2>/dev/null
import sys, importlib
for spec in sys.argv[1:]:
    name, _, want = spec.partition("==")
    got = importlib.import_module(name).__version__.split("+")[0]
    if want and got != want:
        sys.exit(f"{name} {got} != {want}")
EOF
}
if [ -x "$venv/bin/python" ] && py_has "${pins[@]}" numpy safetensors; then
  echo "== reusing $venv"
elif [ -e "$venv" ] && [ -n "${COMPAT_VENV:-}" ]; then
  echo "compat: $venv exists but lacks ${pins[*]} numpy safetensors; leaving it as it is" \
    "(unset COMPAT_VENV to use /tmp/medvlm-compat-venv, or name a new folder)" >&2
  exit 1
else
  echo "== installing ${pins[*]} numpy safetensors pillow from PyPI into $venv (a few minutes)"
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "${pins[@]}" numpy safetensors pillow
  py_has "${pins[@]}" numpy safetensors PIL ||
    { echo "compat: $venv still lacks ${pins[*]} numpy safetensors pillow" >&2; exit 1; }
fi

# ---- medvlm's side ----
out=${COMPAT_OUT:-$(mktemp -d /tmp/medvlm-compat.XXXXXX)}
mkdir -p "$out"
out=$(cd "$out" && pwd)
echo "== medvlm outputs in $out"
rm -rf "$out"/{model,data,data300,run-*,merged-*}
"$medvlm" init model --preset tiny --seed 0 "$out/model"
"$medvlm" init data --per-class 24 --size 224 --seed 1 "$out/data"
"$medvlm" init data --per-class 2 --size 300 --seed 2 "$out/data300"
finetune() { # RUN_NAME FLAGS...
  local name=$1
  shift
  "$medvlm" finetune --model "$out/model" "$@" --images "$out/data/images" \
    --labels "$out/data/labels.csv" --classes NC,G3,G4,G5 \
    --prompts "$root/examples/sicapv2_ensemble.json" --shots 8 --epochs 3 --lr 1e-2 \
    --out "$out/run-$name"
}
finetune lora --peft lora
finetune lora-all --peft lora --lora-targets q,k,v,o,fc1,fc2 --rank 2 --lora-alpha 8
finetune ln --peft ln
finetune bias --peft bias
runs=(lora lora-all ln bias)
for lora in lora lora-all; do
  "$medvlm" merge --model "$out/model" --run "$out/run-$lora" --out "$out/merged-$lora"
done

# two image sets: 224 px (the HF resize is the identity) and 300 px (a real bicubic resize)
embed_set() { # SIZE IMAGE...
  local s=$1
  shift
  "$medvlm" preprocess --model "$out/model" --out "$out/pixels-$s.safetensors" "$@" >/dev/null
  "$medvlm" embed --model "$out/model" --out "$out/emb-base-$s.safetensors" "$@"
  for run in "${runs[@]}"; do
    "$medvlm" embed --model "$out/model" --run "$out/run-$run" --out "$out/emb-$run-$s.safetensors" "$@"
  done
  for lora in lora lora-all; do
    "$medvlm" embed --model "$out/merged-$lora" --out "$out/emb-merged-$lora-$s.safetensors" "$@"
  done
}
all224=("$out"/data/images/*.jpg)
img224=()
for ((i = 0; i < ${#all224[@]}; i += 12)); do img224+=("${all224[i]}"); done
embed_set 224 "${img224[@]}"
embed_set 300 "$out"/data300/images/*.jpg
printf '%s\n' "a histopathology slide showing benign glands" "gleason grade 5" \
  "an image of cribriform glands, Gleason pattern 4" >"$out/prompts.txt"
"$medvlm" embed --model "$out/merged-lora" --prompts "$out/prompts.txt" \
  --out "$out/emb-merged-text.safetensors"

# ---- the Python side ----
if ! py_has PIL; then
  echo "== $venv lacks pillow: installing it into $out/pylib (the venv is left as it is)"
  "$venv/bin/pip" install -q --disable-pip-version-check --target "$out/pylib" pillow
  export PYTHONPATH="$out/pylib${PYTHONPATH:+:$PYTHONPATH}"
fi
echo "== checks"
"$venv/bin/python" "$here/check_compat.py" "$out"
