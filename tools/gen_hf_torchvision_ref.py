#!/usr/bin/env python3
"""Regenerate tests/data/hf-torchvision/ref.safetensors: small synthetic RGB images (made
here with numpy: gradients, stripes and noise, in sizes that force upscaling, downscaling,
odd and non-square shapes, and a crop larger than the resized image) and what transformers 5's
default CLIPImageProcessor (the torchvision backend) makes of them. tests/unit/test_preprocess_tv.c
compares medvlm's `hf-torchvision` pipeline with them; the test needs no Python. The script
also prints how far the Pillow backend (CLIPImageProcessorPil, the only one in transformers
4.x; medvlm's `hf`) is from the torchvision one on each image.

Needs transformers >= 5 with torch, torchvision, Pillow, numpy and safetensors:

    python3 tools/gen_hf_torchvision_ref.py [--out tests/data/hf-torchvision/ref.safetensors]

The file holds, per case i: case<i>.rgb (H, W, 3) uint8, case<i>.tv (3, ch, cw) float32 (the
torchvision backend's pixel_values), and in the metadata case<i>.config = "shortest_edge
crop_height crop_width resample".
"""
import argparse
import json

import numpy as np
import PIL
import torch
import torchvision
import transformers
from PIL import Image
from safetensors.numpy import save_file
from transformers import CLIPImageProcessor, CLIPImageProcessorPil

# (width, height, shortest_edge, crop_height, crop_width, resample: 3 bicubic, 2 bilinear)
CASES = [
    (7, 5, 32, 32, 32, 3),      # tiny tile upscaled ~6x on both axes
    (13, 9, 24, 24, 24, 3),     # odd sizes, upscaled
    (100, 75, 32, 32, 32, 3),   # downscaled ~2.3x
    (37, 200, 24, 24, 24, 3),   # tall, odd, downscaled; long side cropped
    (40, 23, 32, 28, 36, 3),    # non-square crop, upscaled on one axis more than the other
    (64, 48, 48, 40, 40, 3),    # height unchanged: a horizontal pass only
    (30, 50, 20, 24, 25, 3),    # crop larger than the resized image: zero padding, odd
    (90, 61, 28, 28, 28, 2),    # bilinear
    (19, 33, 40, 40, 40, 2),    # bilinear, upscaled
]


def make_image(w, h, seed):
    """Gradients, hard-edged stripes and noise: every resampling tap matters."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 255.0 * x / max(w - 1, 1)
    g = 255.0 * ((x + 2 * y) % 7 < 3)
    b = rng.integers(0, 256, size=(h, w)).astype(np.float64)
    img = np.stack([r, g, b], axis=-1)
    img[h // 3, :, :] = 255  # a one-pixel white line
    img[:, w // 2, 0] = 0
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="tests/data/hf-torchvision/ref.safetensors")
    args = ap.parse_args()
    tensors, meta = {}, {}
    for i, (w, h, s, ch, cw, rs) in enumerate(CASES):
        rgb = make_image(w, h, 100 + i)
        kw = dict(size={"shortest_edge": s}, crop_size={"height": ch, "width": cw}, resample=rs)
        tv = CLIPImageProcessor(**kw)
        pil = CLIPImageProcessorPil(**kw)
        assert tv.backend == "torchvision" and pil.backend == "pil", (tv.backend, pil.backend)
        im = Image.fromarray(rgb, "RGB")
        a = tv(images=im, return_tensors="pt")["pixel_values"][0].numpy()
        b = pil(images=im, return_tensors="np")["pixel_values"][0]
        assert a.dtype == np.float32 and a.shape == (3, ch, cw), (a.dtype, a.shape)
        tensors[f"case{i}.rgb"] = np.ascontiguousarray(rgb)
        tensors[f"case{i}.tv"] = np.ascontiguousarray(a)
        meta[f"case{i}.config"] = f"{s} {ch} {cw} {rs}"
        print(f"case{i}: {w}x{h} -> shortest {s}, crop {ch}x{cw}, resample {rs}: "
              f"max |tv - pil| = {np.abs(a - b).max():.4f}")
    meta["cases"] = str(len(CASES))
    meta["generator"] = json.dumps({"transformers": transformers.__version__,
                                    "torch": torch.__version__,
                                    "torchvision": torchvision.__version__,
                                    "pillow": PIL.__version__, "numpy": np.__version__})
    save_file(tensors, args.out, metadata=meta)


if __name__ == "__main__":
    main()
