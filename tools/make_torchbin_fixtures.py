#!/usr/bin/env python3
"""make_torchbin_fixtures.py - write the pytorch_model.bin test fixtures (tests/data/torchbin/).

Run from the repository root with a Python that has torch (not part of the build or tests):

    python3 tools/make_torchbin_fixtures.py [OUT_DIR]

Everything is self-made: seeded random / arange tensors in a tiny CLIP shape (text width 16,
1 layer, 2 heads, vocab 100, context 16; vision width 16, image 32, patch 8; projection 8).

  f32/       config.json + pytorch_model.bin (torch.save zip format). Some tensors are saved
             as views: text_projection.weight is a transpose (non-contiguous), the vision
             q/k projections share one storage (offset > 0), position_ids are expanded int64
             buffers, as transformers' CLIP has them.
  f32-st/    the same values as model.safetensors (written here with struct + json).
  f16/       config.json + pytorch_model.bin with every float tensor in float16.
  f16-st/    the same float16 values as model.safetensors.
  dtypes.bin one small tensor per storage type (float, half, bfloat16, double, long, int,
             short, char, byte, bool): values arange-based, checked by test_torchbin.c.
  views.bin  strided views: a transpose, two slices of one storage, an expanded int64, and
             every other column of a float16 matrix.
  proto4.bin dtypes.bin's dict saved with pickle_protocol=4 (MEMOIZE, SHORT_BINUNICODE, ...).
  legacy.bin a dict saved in the pre-1.6 format (_use_new_zipfile_serialization=False).
  rezip.bin  dtypes.bin re-written by Python's zipfile (unaligned) with byteorder "little".
  bigendian.bin  the same with byteorder "big": refused.
  evil.bin   a zip with a hand-made data.pkl calling os.system: must be refused unrun.
  fuzz/corpus/torchbin/  the small archives above and their data.pkl, as fuzzing seeds.
  counts.txt parameter counts of the tiny model (text vision shared), for the CLI test.
"""
import collections
import json
import os
import struct
import sys
import zipfile

import torch

FIXED_TIME = (2020, 1, 1, 0, 0, 0)  # zip timestamps: regenerating gives the same bytes
OUT = sys.argv[1] if len(sys.argv) > 1 else "tests/data/torchbin"

CFG = {
    "architectures": ["CLIPModel"],
    "model_type": "clip",
    "projection_dim": 8,
    "logit_scale_init_value": 2.6592,
    "text_config": {
        "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
        "num_attention_heads": 2, "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5,
        "vocab_size": 100, "max_position_embeddings": 16, "bos_token_id": 98,
        "eos_token_id": 99, "pad_token_id": 1, "model_type": "clip_text_model",
    },
    "vision_config": {
        "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
        "num_attention_heads": 2, "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5,
        "num_channels": 3, "image_size": 32, "patch_size": 8,
        "model_type": "clip_vision_model",
    },
}


def layer_shapes(prefix, c, i):
    s = [("layer_norm1.weight", (c,)), ("layer_norm1.bias", (c,))]
    for p in ("q_proj", "k_proj", "v_proj", "out_proj"):
        s += [(f"self_attn.{p}.weight", (c, c)), (f"self_attn.{p}.bias", (c,))]
    s += [("layer_norm2.weight", (c,)), ("layer_norm2.bias", (c,))]
    s += [("mlp.fc1.weight", (i, c)), ("mlp.fc1.bias", (i,))]
    s += [("mlp.fc2.weight", (c, i)), ("mlp.fc2.bias", (c,))]
    return [(f"{prefix}.encoder.layers.0.{n}", shape) for n, shape in s]


def state_dict():
    t, v, d = CFG["text_config"], CFG["vision_config"], CFG["projection_dim"]
    ct, cv, p = t["hidden_size"], v["hidden_size"], v["patch_size"]
    npos_t, npos_v = t["max_position_embeddings"], 1 + (v["image_size"] // p) ** 2
    shapes = [("logit_scale", ()),
              ("text_model.embeddings.token_embedding.weight", (t["vocab_size"], ct)),
              ("text_model.embeddings.position_embedding.weight", (npos_t, ct))]
    shapes += layer_shapes("text_model", ct, t["intermediate_size"])
    shapes += [("text_model.final_layer_norm.weight", (ct,)),
               ("text_model.final_layer_norm.bias", (ct,)),
               ("text_projection.weight", (d, ct)),
               ("vision_model.embeddings.class_embedding", (cv,)),
               ("vision_model.embeddings.patch_embedding.weight", (cv, 3, p, p)),
               ("vision_model.embeddings.position_embedding.weight", (npos_v, cv)),
               ("vision_model.pre_layrnorm.weight", (cv,)),
               ("vision_model.pre_layrnorm.bias", (cv,))]
    shapes += layer_shapes("vision_model", cv, v["intermediate_size"])
    shapes += [("vision_model.post_layernorm.weight", (cv,)),
               ("vision_model.post_layernorm.bias", (cv,)),
               ("visual_projection.weight", (d, cv))]
    g = torch.Generator().manual_seed(1234)
    sd = collections.OrderedDict()
    for name, shape in shapes:
        sd[name] = torch.randn(shape, generator=g) * 0.02
    sd["logit_scale"] = torch.tensor(2.6592)
    sd["text_model.embeddings.position_ids"] = torch.arange(npos_t).expand((1, -1))
    sd["vision_model.embeddings.position_ids"] = torch.arange(npos_v).expand((1, -1))
    return sd


def with_views(sd):
    """The same values, some saved as views of other storages."""
    out = collections.OrderedDict(sd)
    w = sd["text_projection.weight"]
    out["text_projection.weight"] = w.t().contiguous().t()  # stride (1, 8)
    q = "vision_model.encoder.layers.0.self_attn.q_proj.weight"
    k = "vision_model.encoder.layers.0.self_attn.k_proj.weight"
    both = torch.cat([sd[q], sd[k]])  # one storage, k at offset 256
    out[q], out[k] = both[:16], both[16:]
    assert not out["text_projection.weight"].is_contiguous()
    assert out[k].storage_offset() == 256
    return out


ST_DTYPES = {torch.float32: "F32", torch.float16: "F16", torch.int64: "I64"}


def write_safetensors(path, sd):
    header, blobs, off = {}, [], 0
    for name, t in sd.items():
        b = t.contiguous().numpy().tobytes()
        header[name] = {"dtype": ST_DTYPES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def model_folder(name, sd, bin_sd):
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(CFG, f, indent=2)
    if bin_sd is not None:
        torch.save(bin_sd, os.path.join(d, "pytorch_model.bin"))
    else:
        write_safetensors(os.path.join(d, "model.safetensors"), sd)


def dtypes_dict():
    sd = collections.OrderedDict()
    base = torch.arange(6) - 2  # -2..3
    sd["f32"] = (base.float() / 4).reshape(2, 3)
    sd["f16"] = (base.float() / 4).half()
    sd["bf16"] = (base.float() / 4).bfloat16()
    sd["f64"] = (base.double() / 4)
    sd["i64"] = base * (1 << 40)
    sd["i32"] = base.int() * 100000
    sd["i16"] = base.short() * 1000
    sd["i8"] = base.to(torch.int8)
    sd["u8"] = (base + 250).to(torch.uint8)
    sd["bool"] = base > 0
    sd["scalar"] = torch.tensor(7.5)
    sd["empty"] = torch.zeros(0, 3)
    return sd


def evil(path):
    pkl = (b"\x80\x02cos\nsystem\nq\x00X\x18\x00\x00\x00touch medvlm-evil-ran.txt"
           b"q\x01\x85q\x02Rq\x03.")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr(zipfile.ZipInfo("evil/data.pkl", FIXED_TIME), pkl)
        z.writestr(zipfile.ZipInfo("evil/version", FIXED_TIME), "3\n")


def rezip(src, dst, byteorder):
    """dtypes.bin re-written by Python's zipfile (unaligned records) plus a byteorder record."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for name in zin.namelist():
            zout.writestr(zipfile.ZipInfo(name, FIXED_TIME), zin.read(name))
        zout.writestr(zipfile.ZipInfo("dtypes/byteorder", FIXED_TIME), byteorder)


def fuzz_seeds(out):
    """Seeds for fuzz/fuzz_torchbin.c: the small archives and their bare data.pkl."""
    os.makedirs(out, exist_ok=True)
    views = collections.OrderedDict()
    base = torch.arange(12, dtype=torch.float32)
    views["t"] = base.reshape(3, 4).t()  # strided
    views["a"], views["b"] = base[:5], base[5:]  # one storage, offsets
    views["e"] = torch.arange(4).expand((1, -1))
    views["h"] = base.half().reshape(2, 6)[:, ::2]  # every other column
    torch.save(views, os.path.join(OUT, "views.bin"))
    for name in ("views.bin", "dtypes.bin", "proto4.bin", "rezip.bin", "evil.bin"):
        with open(os.path.join(OUT, name), "rb") as f:
            blob = f.read()
        with open(os.path.join(out, name), "wb") as f:
            f.write(blob)
        with zipfile.ZipFile(os.path.join(OUT, name)) as z:
            pkl = [n for n in z.namelist() if n.endswith("/data.pkl")][0]
            with open(os.path.join(out, name.replace(".bin", ".pkl")), "wb") as f:
                f.write(z.read(pkl))


def main():
    os.makedirs(OUT, exist_ok=True)
    sd = state_dict()
    model_folder("f32", sd, with_views(sd))
    model_folder("f32-st", sd, None)
    sd16 = collections.OrderedDict(
        (k, v.half() if v.is_floating_point() else v) for k, v in sd.items())
    model_folder("f16", sd16, sd16)
    model_folder("f16-st", sd16, None)
    torch.save(dtypes_dict(), os.path.join(OUT, "dtypes.bin"))
    torch.save(dtypes_dict(), os.path.join(OUT, "proto4.bin"), pickle_protocol=4)
    torch.save(dtypes_dict(), os.path.join(OUT, "legacy.bin"),
               _use_new_zipfile_serialization=False)
    evil(os.path.join(OUT, "evil.bin"))
    rezip(os.path.join(OUT, "dtypes.bin"), os.path.join(OUT, "rezip.bin"), "little")
    rezip(os.path.join(OUT, "dtypes.bin"), os.path.join(OUT, "bigendian.bin"), "big")
    fuzz_seeds(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fuzz", "corpus",
                            "torchbin"))
    counts = {"text": 0, "vision": 0, "shared": 0}
    for k, v in sd.items():
        if "position_ids" in k:
            continue
        tower = ("text" if k.startswith("text") else
                 "vision" if k.startswith("vision") or k.startswith("visual") else "shared")
        counts[tower] += v.numel()
    with open(os.path.join(OUT, "counts.txt"), "w") as f:
        f.write(f"{counts['text']} {counts['vision']} {counts['shared']}\n")
    # cross-check the fixtures with torch itself
    back = torch.load(os.path.join(OUT, "f32", "pytorch_model.bin"))
    assert all(torch.equal(back[k], sd[k]) for k in sd)


if __name__ == "__main__":
    main()
