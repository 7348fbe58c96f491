"""check_compat.py WORK: medvlm's fine-tuning files read by the real Python stack.

WORK is the folder tests/compat/run.sh filled with medvlm (see there): a random-weight tiny
CLIP (model/); two LoRA runs (run-lora/: q,k,v, rank 4, alpha 4; run-lora-all/: every
target, rank 2, alpha 8) each merged into a new model folder (merged-lora/, merged-lora-all/);
LayerNorm and bias runs (run-ln/, run-bias/); medvlm's preprocessed pixels and embeddings of
two image sets (224 px: the resize is the identity; 300 px: a real bicubic resize).

Every check prints its name, its max |difference| and its tolerance, and the script exits 1
when one fails. Outside CI on purpose: it needs torch, transformers and peft from PyPI.
"""

import json
import os
import sys
import warnings

import numpy as np
import PIL
import safetensors
import torch
from safetensors import safe_open
from safetensors.torch import load_file

import peft
import transformers

transformers.utils.logging.disable_progress_bar()
from peft import PeftModel
from peft.tuners.lora import LoraLayer
from PIL import Image
from transformers import CLIPImageProcessor, CLIPModel, CLIPTokenizer

TOL = 1e-4
failures = []


def report(name, ok, detail):
    print(f"{'PASS' if ok else 'FAIL'}  {name}: {detail}")
    if not ok:
        failures.append(name)


def close(name, got, ref, tol=TOL):
    """max |got - ref| <= tol, printed with the first worst index."""
    got = np.asarray(got, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    if got.shape != ref.shape:
        report(name, False, f"shape {got.shape} vs {ref.shape}")
        return
    d = np.abs(got - ref)
    i = np.unravel_index(int(np.argmax(d)), d.shape) if d.size else ()
    ok = bool(np.isfinite(d).all() and d.max() <= tol)
    report(name, ok, f"max |diff| {d.max():.3e} (tol {tol:g}) at {tuple(int(x) for x in i)}")


def differs(name, a, b, least):
    """Guards against a vacuous check: the fine-tuning must have changed something."""
    d = float(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).max())
    report(name, d > least, f"max |diff| {d:.3e} (must exceed {least:g})")


def st_read(path):
    with safe_open(path, "np") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, (f.metadata() or {})


def medvlm_pixels(path):
    t, meta = st_read(path)
    return torch.from_numpy(np.stack([t[f"pixels.{i}"] for i in range(int(meta["count"]))]))


def medvlm_embeds(path):
    t, meta = st_read(path)
    return t["image_embeds"], json.loads(meta["image_names"])


def clip_load(folder):
    """CLIPModel in float32 with its loading report; any missing/unexpected/mismatched key fails."""
    m, info = CLIPModel.from_pretrained(folder, dtype=torch.float32, output_loading_info=True)
    bad = {k: v for k, v in info.items() if v and k != "error_msgs"}
    bad.update({"error_msgs": info["error_msgs"]} if info.get("error_msgs") else {})
    report(f"CLIPModel.from_pretrained({os.path.basename(folder)}) loading report", not bad,
           "no missing, unexpected or mismatched keys" if not bad else repr(bad)[:600])
    return m.eval()


@torch.no_grad()
def image_embeds(model, pixels):
    out = model.get_image_features(pixel_values=pixels)
    feats = out if torch.is_tensor(out) else out.pooler_output  # transformers 5: a ModelOutput
    return torch.nn.functional.normalize(feats, dim=-1).numpy()


def check_lora(work, lora, sets, mv_pix, hf_pix, base_emb):
    """PeftModel.from_pretrained(CLIPModel, RUN) against medvlm embed --run RUN, then
    CLIPModel.from_pretrained(MERGED) against medvlm embed --model MERGED and --run RUN."""
    run, model_dir, merged_dir = f"{work}/run-{lora}", f"{work}/model", f"{work}/merged-{lora}"
    cfg = json.load(open(f"{run}/adapter_config.json"))
    adapter, _ = st_read(f"{run}/adapter_model.safetensors")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pm = PeftModel.from_pretrained(CLIPModel.from_pretrained(model_dir, dtype=torch.float32),
                                       run).eval()
    msgs = [str(w.message) for w in caught]
    key_msgs = [m for m in msgs if "adapter key" in m or "missing" in m.lower()
                or "unexpected" in m.lower()]
    report(f"{lora}: PeftModel.from_pretrained: no missing/unexpected adapter key warnings", not key_msgs,
           f"{len(msgs)} warning(s) in all" + (f": {key_msgs}" if key_msgs else ""))
    for m in msgs:
        if m not in key_msgs:
            print(f"      (other warning: {m[:200]})")
    # load_adapter returns the load result PeftModel.from_pretrained only warns about
    res = pm.load_adapter(run, adapter_name="recheck")
    report(f"{lora}: peft load_adapter(RUN): missing and unexpected keys",
           not res.missing_keys and not res.unexpected_keys,
           f"missing {list(res.missing_keys)}, unexpected {list(res.unexpected_keys)}")
    pm.delete_adapter("recheck")
    pm.set_adapter("default")

    lora_mods = {n: m for n, m in pm.named_modules() if isinstance(m, LoraLayer)}
    n_file = sum(k.endswith(".lora_A.weight") for k in adapter)
    non_vision = [n for n in lora_mods if ".vision_model." not in n]
    report(f"{lora}: target_modules matched every adapter tensor's module and only vision modules",
           len(lora_mods) == n_file and not non_vision,
           f"{len(lora_mods)} LoRA modules, {n_file} lora_A tensors in the file, "
           f"{len(non_vision)} outside vision_model; target_modules = {cfg['target_modules']!r}")
    # every tensor in the file landed in the model bit for bit
    sd = pm.state_dict()
    worst, missing = 0.0, []
    for k, v in adapter.items():
        mk = k.replace(".lora_A.weight", ".lora_A.default.weight").replace(
            ".lora_B.weight", ".lora_B.default.weight")
        if mk not in sd:
            missing.append(k)
            continue
        worst = max(worst, float(np.abs(sd[mk].numpy() - v).max()))
    report(f"{lora}: adapter tensors in the PeftModel == adapter_model.safetensors",
           not missing and worst == 0.0,
           f"{len(adapter)} tensors, max |diff| {worst:.3e} (tol 0)"
           + (f", not found: {missing}" if missing else ""))
    bmax = max(float(np.abs(v).max()) for k, v in adapter.items() if ".lora_B." in k)
    report(f"{lora}: LoRA B is non-zero (the run trained)", bmax > 0, f"max |B| {bmax:.3e}")
    scal = {float(m.scaling["default"]) for m in lora_mods.values()}
    report(f"{lora}: peft scaling == lora_alpha / r", scal == {cfg["lora_alpha"] / cfg["r"]},
           f"scaling {sorted(scal)}, alpha/r = {cfg['lora_alpha'] / cfg['r']}")

    lora_emb = {}
    for s in sets:
        mv, _ = medvlm_embeds(f"{work}/emb-{lora}-{s}.safetensors")
        lora_emb[s] = image_embeds(pm, mv_pix[s])
        close(f"{lora} embeds {s}px: PeftModel (medvlm pixels) vs medvlm embed --run", lora_emb[s], mv)
        close(f"{lora} embeds {s}px: PeftModel (CLIPImageProcessor) vs medvlm embed --run",
              image_embeds(pm, hf_pix[s]), mv)
        differs(f"{lora} embeds {s}px differ from the base model's", lora_emb[s], base_emb[s], 1e-3)

    # ---- 3. merged: CLIPModel.from_pretrained(MERGED) vs medvlm embed --model MERGED / --run ----
    merged = clip_load(merged_dir)
    for s in sets:
        got = image_embeds(merged, mv_pix[s])
        close(f"{lora} merged embeds {s}px: CLIPModel(MERGED) vs medvlm embed --model MERGED", got,
              medvlm_embeds(f"{work}/emb-merged-{lora}-{s}.safetensors")[0])
        close(f"{lora} merged embeds {s}px: CLIPModel(MERGED) vs medvlm embed --run", got,
              medvlm_embeds(f"{work}/emb-{lora}-{s}.safetensors")[0])
    # the merged weights themselves against peft's own merge
    ref = pm.merge_and_unload().state_dict()
    mine = load_file(f"{merged_dir}/model.safetensors")
    extra = sorted(set(mine) - set(ref))
    lost = sorted(k for k in set(ref) - set(mine) if not k.endswith("position_ids"))
    worst = max(float((mine[k] - ref[k]).abs().max()) for k in mine if k in ref)
    report(f"{lora}: MERGED/model.safetensors keys == peft merge_and_unload() state_dict keys",
           not extra and not lost, f"{len(mine)} tensors; extra {extra[:5]}, absent {lost[:5]}")
    close(f"{lora}: MERGED/model.safetensors vs peft merge_and_unload() weights", [worst], [0.0], 1e-6)


def main(work):
    print(f"python {sys.version.split()[0]}, torch {torch.__version__}, transformers "
          f"{transformers.__version__}, peft {peft.__version__}, numpy {np.__version__}, "
          f"safetensors {safetensors.__version__}, pillow {PIL.__version__}")
    torch.manual_seed(0)
    model_dir, merged_dir = f"{work}/model", f"{work}/merged-lora"
    sets = ("224", "300")
    names = {s: medvlm_embeds(f"{work}/emb-base-{s}.safetensors")[1] for s in sets}
    mv_pix = {s: medvlm_pixels(f"{work}/pixels-{s}.safetensors") for s in sets}

    # ---- 0. preprocessing: CLIPImageProcessor from the model folder vs medvlm preprocess ----
    proc = CLIPImageProcessor.from_pretrained(model_dir)
    hf_pix = {}
    for s in sets:
        imgs = [Image.open(n).convert("RGB") for n in names[s]]
        hf_pix[s] = proc(images=imgs, return_tensors="pt")["pixel_values"].float()
        close(f"pixels {s}px: CLIPImageProcessor vs medvlm preprocess", hf_pix[s], mv_pix[s])

    # ---- base model: transformers vs medvlm embed (the reference everything else builds on) ----
    base = clip_load(model_dir)
    base_emb = {}
    for s in sets:
        base_emb[s] = image_embeds(base, mv_pix[s])
        close(f"base embeds {s}px: CLIPModel vs medvlm embed", base_emb[s],
              medvlm_embeds(f"{work}/emb-base-{s}.safetensors")[0])

    # ---- 1-3. LoRA runs: PeftModel vs medvlm embed --run; merged folder vs both ----
    for lora in ("lora", "lora-all"):
        check_lora(work, lora, sets, mv_pix, hf_pix, base_emb)

    # the merged folder is a complete HF folder: processor and tokenizer load, text tower agrees
    merged = CLIPModel.from_pretrained(merged_dir, dtype=torch.float32).eval()
    mproc = CLIPImageProcessor.from_pretrained(merged_dir)
    close("CLIPImageProcessor(MERGED) == CLIPImageProcessor(DIR) pixels",
          mproc(images=[Image.open(n).convert("RGB") for n in names["300"]],
                return_tensors="pt")["pixel_values"], hf_pix["300"], 0.0)
    tok = CLIPTokenizer.from_pretrained(merged_dir)
    t, meta = st_read(f"{work}/emb-merged-text.safetensors")
    prompts = json.loads(meta["prompts"])
    with torch.no_grad():
        ids = tok(prompts, padding=True, return_tensors="pt")
        out = merged.get_text_features(**ids)
        feats = out if torch.is_tensor(out) else out.pooler_output
        text = torch.nn.functional.normalize(feats, dim=-1).numpy()
    close(f"text embeds of {len(prompts)} prompts: CLIPTokenizer + CLIPModel(MERGED) vs medvlm embed "
          "--prompts", text, t["text_embeds"])

    # ---- 4. ln and bias runs: trained_params.safetensors into CLIPModel (strict=False) ----
    for mode in ("ln", "bias"):
        run = f"{work}/run-{mode}"
        trained = load_file(f"{run}/trained_params.safetensors")
        m = CLIPModel.from_pretrained(model_dir, dtype=torch.float32).eval()
        before = {k: v.clone() for k, v in m.state_dict().items() if k in trained}
        res = m.load_state_dict(trained, strict=False)
        report(f"{mode}: load_state_dict(trained_params, strict=False) unexpected keys",
               not res.unexpected_keys,
               f"{len(trained)} tensors loaded, unexpected {list(res.unexpected_keys)}")
        non_vision = [k for k in trained if not k.startswith("vision_model.")]
        report(f"{mode}: trained tensors are all vision_model tensors", not non_vision,
               f"outside vision_model: {non_vision}")
        differs(f"{mode}: trained tensors differ from the base's",
                np.concatenate([trained[k].numpy().ravel() for k in sorted(trained)]),
                np.concatenate([before[k].numpy().ravel() for k in sorted(trained)]), 1e-4)
        for s in sets:
            mv, _ = medvlm_embeds(f"{work}/emb-{mode}-{s}.safetensors")
            got = image_embeds(m, mv_pix[s])
            close(f"{mode} embeds {s}px: CLIPModel + trained_params vs medvlm embed --run", got, mv)
            close(f"{mode} embeds {s}px: same through CLIPImageProcessor", image_embeds(m, hf_pix[s]),
                  mv)

    print()
    if failures:
        print(f"compat: {len(failures)} check(s) FAILED: " + "; ".join(failures))
        return 1
    print("compat: all checks passed")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: check_compat.py WORK  (run by tests/compat/run.sh)")
    sys.exit(main(sys.argv[1]))
