#!/usr/bin/env python3
"""pil_preprocess.py - the Python reference pipelines, timed like bench_preprocess:
images/s of decode + preprocess with Pillow (+ numpy / torchvision), 1 process and P processes;
best of R runs.

    /usr/bin/python3 bench/pil_preprocess.py [--n N] [--procs P] [--reps R] IMAGE...

  decode        Image.open(f).convert("RGB") + load
  hf (crop)     what CLIPImageProcessor does: Pillow bicubic shortest-edge resize to 224,
                centre crop 224, numpy rescale (float64 -> float32) + normalise, CHW
  tutorial aa   torchvision ToTensor -> Normalize -> Resize([224, 224], antialias=True)
  tutorial no-aa  the same with antialias=False
Multi-process rows use a multiprocessing Pool (the way a DataLoader with workers runs).
"""
import argparse, time
from multiprocessing import Pool

import numpy as np
from PIL import Image

MEAN = np.array([0.48145466, 0.4578275, 0.40821073], np.float32)
STD = np.array([0.26862954, 0.26130258, 0.27577711], np.float32)


def decode(path):
    im = Image.open(path).convert("RGB")
    im.load()
    return im


def hf(path, s=224):
    im = decode(path)
    w, h = im.size
    if w <= h:
        nw, nh = s, int(s * h / w)
    else:
        nh, nw = s, int(s * w / h)
    im = im.resize((nw, nh), Image.BICUBIC, reducing_gap=None)
    a = np.asarray(im)
    top, left = (nh - s) // 2, (nw - s) // 2
    a = a[top:top + s, left:left + s]
    x = (a * (1 / 255)).astype(np.float32)
    x = (x - MEAN) / STD
    return np.ascontiguousarray(x.transpose(2, 0, 1))


_tv = {}


def tutorial(path, aa=True, s=224):
    import torch
    import torchvision.transforms as T
    torch.set_num_threads(1)
    key = aa
    if key not in _tv:
        _tv[key] = T.Compose([T.ToTensor(), T.Normalize(MEAN.tolist(), STD.tolist()),
                              T.Resize([s, s], antialias=aa)])
    return _tv[key](decode(path)).numpy()


def tutorial_noaa(path):
    return tutorial(path, aa=False)


def run(fn, paths, procs, reps):
    times = []
    pool = Pool(procs) if procs > 1 else None
    if pool:
        pool.map(fn, paths[:procs * 2])  # warm the workers (imports)
    else:
        fn(paths[0])
    for _ in range(reps):
        t0 = time.perf_counter()
        if pool:
            pool.map(fn, paths, chunksize=4)
        else:
            for p in paths:
                fn(p)
        times.append(time.perf_counter() - t0)
    if pool:
        pool.close()
        pool.join()
    return len(paths) / min(times)  # the least disturbed run: the machine is shared


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("images", nargs="+")
    a = ap.parse_args()
    paths = [a.images[i % len(a.images)] for i in range(a.n)]
    print("decode             1 process : %8.1f images/s" % run(decode, paths, 1, a.reps))
    for name, fn in (("hf (crop)", hf), ("tutorial aa", tutorial), ("tutorial no-aa", tutorial_noaa)):
        for p in (1, a.procs):
            print("%-16s %d process%s: %8.1f images/s" % (name, p, "  " if p == 1 else "es", run(fn, paths, p, a.reps)))


if __name__ == "__main__":
    main()
