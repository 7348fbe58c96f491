#!/usr/bin/env bash
# test_torchbin.sh - `medvlm info` on folders that hold only pytorch_model.bin: the same
# architecture and parameter counts as the safetensors twin (counts written by
# tools/make_torchbin_fixtures.py with torch), and one-line errors for broken or hostile files.
set -u
cli=${MEDVLM_CLI:?set MEDVLM_CLI to the medvlm binary}
case $cli in /*) ;; *) cli=$PWD/$cli ;; esac
data=${MEDVLM_SOURCE_DIR:?set MEDVLM_SOURCE_DIR to the repository}/tests/data/torchbin
work=$(mktemp -d "${TMPDIR:-/tmp}/medvlm-torchbin.XXXXXX")
trap 'rm -rf "$work"' EXIT
passed=0 failed=0
ok() { passed=$((passed + 1)); }
fail() { failed=$((failed + 1)); echo "FAIL: $*" >&2; }
expect() { # expect FILE TEXT: FILE contains the line fragment TEXT
  if grep -qF -- "$2" "$1"; then ok; else fail "$1 lacks '$2'"; sed 's/^/  | /' "$1" >&2; fi
}

read -r n_text n_vision n_shared < "$data/counts.txt"
total=$((n_text + n_vision + n_shared))

for kind in f32 f16; do
  dtype=$(echo "$kind" | tr a-z A-Z)
  if "$cli" info "$data/$kind" > "$work/$kind.out" 2> "$work/$kind.err"; then ok; else
    fail "medvlm info $kind exited $?"; cat "$work/$kind.err" >&2; fi
  expect "$work/$kind.out" "parameters total $total (vision $n_vision, text $n_text, logit_scale $n_shared)"
  expect "$work/$kind.out" "  parameters $n_text"
  expect "$work/$kind.out" "  parameters $n_vision"
  expect "$work/$kind.out" "weight dtypes $dtype"
  expect "$work/$kind.out" "files config.json pytorch_model.bin"
  # everything but the folder name and file list equals the safetensors twin's report
  "$cli" info "$data/$kind-st" > "$work/$kind-st.out" 2>&1
  if diff <(grep -v -e '^model ' -e '^files ' "$work/$kind.out") \
          <(grep -v -e '^model ' -e '^files ' "$work/$kind-st.out") > "$work/diff" ; then ok; else
    fail "info differs between $kind and $kind-st"; cat "$work/diff" >&2; fi
done
"$cli" info --json "$data/f32" > "$work/json.out" 2>&1
expect "$work/json.out" "\"parameters\":{\"text\":$n_text,\"vision\":$n_vision,\"shared\":$n_shared,\"total\":$total}"

# broken and hostile checkpoints: exit 1, one line on stderr naming the file and the problem
check_err() { # check_err NAME FILE_OR_EMPTY NEEDLE
  local dir=$work/$1
  mkdir -p "$dir"
  cp "$data/f32/config.json" "$dir/"
  if [ -n "$2" ]; then cp "$2" "$dir/pytorch_model.bin"; else : > "$dir/pytorch_model.bin"; fi
  (cd "$work" && "$cli" info "$dir" > "$dir.out" 2> "$dir.err")
  local rc=$?
  if [ $rc -eq 1 ]; then ok; else fail "$1: exit $rc, expected 1"; fi
  if [ "$(wc -l < "$dir.err")" -eq 1 ]; then ok; else fail "$1: stderr is not one line"; cat "$dir.err" >&2; fi
  expect "$dir.err" "$dir/pytorch_model.bin"
  expect "$dir.err" "$3"
  if [ -s "$dir.out" ]; then fail "$1: printed to stdout"; else ok; fi
}
check_err empty "" "file is empty"
check_err evil "$data/evil.bin" "refusing pickle global os.system"
if [ -e "$work/medvlm-evil-ran.txt" ] || [ -e medvlm-evil-ran.txt ]; then fail "evil pickle ran"; else ok; fi
check_err legacy "$data/legacy.bin" "legacy (pre-1.6) torch.save format"
head -c 30000 "$data/f32/pytorch_model.bin" > "$work/trunc.bin"
check_err truncated "$work/trunc.bin" "no zip end-of-central-directory record"
check_err other "$data/dtypes.bin" "missing tensor \"logit_scale\""

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
