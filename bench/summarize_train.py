#!/usr/bin/env python3
"""Summarise bench/train_baselines.sh output (JSON lines) as the training table of BENCHMARKS.md.

usage: summarize_train.py results.jsonl

Per configuration (PEFT mode x batch) and runner: the median over rounds of the seconds per
step each run reported (medvlm: itself a median of its timed steps), the median peak RSS, and
the same-round ratios of medvlm (2 threads) to the faster baseline of that round (Debian's
PyTorch at 1 thread or PyPI's PyTorch + peft at its better thread count), medians over rounds;
then the bf16 steps at batch 16 (medvlm --precision bf16 against PyPI's bf16 autocast step).
"""
import json
import statistics
import sys
from collections import defaultdict


def step_s(rec):
    out = rec["out"]
    return out.get("step_s") or out.get("median_s_per_step")


def main():
    recs = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
    t = defaultdict(list)
    rss = defaultdict(list)
    rounds = defaultdict(dict)  # (cfg, round index) -> who -> s
    seen = defaultdict(int)
    for r in recs:
        s = step_s(r)
        if not s:
            continue
        key = (r["config"], r["who"])
        t[key].append(s)
        rss[key].append(r["max_rss_kb"] / 1024)
        rounds[(r["config"], seen[key])][r["who"]] = s
        seen[key] += 1
    cfgs = sorted({c for c, _ in t}, key=lambda c: (int(c.split("-b")[1]), ["lora", "ln", "bias"].index(c.split("-b")[0])))
    med = lambda k: statistics.median(t[k]) if t[k] else float("nan")
    mid = lambda v: statistics.median(v) if v else float("nan")
    mrss = lambda k: statistics.median(rss[k]) if rss[k] else float("nan")
    print("| config | medvlm 2 threads | medvlm 1 thread | Debian PyTorch 1 thread | PyPI torch + peft 1 thread | PyPI 2 threads | medvlm 2t / faster baseline | medvlm 1t / faster baseline | peak RSS medvlm 2t | Debian PyTorch | PyPI | RSS medvlm / PyTorch (smaller) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for c in cfgs:
        r2, r1 = [], []
        for (cc, i), d in rounds.items():
            if cc != c:
                continue
            base = [d[w] for w in ("torch-1t", "pypi-1t", "pypi-2t") if w in d]
            if not base:
                continue
            if "medvlm-2t" in d:
                r2.append(d["medvlm-2t"] / min(base))
            if "medvlm-1t" in d:
                r1.append(d["medvlm-1t"] / min(base))
        p2 = f"{med((c, 'pypi-2t')):.2f} s" if t[(c, "pypi-2t")] else "-"
        small = min(mrss((c, "torch-1t")), mrss((c, "pypi-1t")))
        print(f"| {c.replace('-b', ', batch ')} | {med((c, 'medvlm-2t')):.2f} s | {med((c, 'medvlm-1t')):.2f} s | "
              f"{med((c, 'torch-1t')):.2f} s | {med((c, 'pypi-1t')):.2f} s | {p2} | "
              f"**{mid(r2):.2f}** | {mid(r1):.2f} | "
              f"{mrss((c, 'medvlm-2t')):.0f} MB | {mrss((c, 'torch-1t')):.0f} MB | {mrss((c, 'pypi-1t')):.0f} MB | "
              f"**{100 * mrss((c, 'medvlm-2t')) / small:.0f}%** |")
    print(f"\n(runs per cell: {min(len(v) for v in t.values())} to {max(len(v) for v in t.values())})")
    bf = [c for c in cfgs if t[(c, "medvlm-bf16")] or t[(c, "pypi-bf16")]]
    if bf:
        print("\n| config, bf16 | medvlm bf16 2 threads | PyPI autocast bf16 2 threads | medvlm bf16 / PyPI bf16 | medvlm fp32 2 threads | peak RSS medvlm bf16 | PyPI bf16 |")
        print("|---|---|---|---|---|---|---|")
    for c in bf:
        r = [d["medvlm-bf16"] / d["pypi-bf16"] for (cc, i), d in rounds.items()
             if cc == c and "medvlm-bf16" in d and "pypi-bf16" in d]
        print(f"| {c.replace('-b', ', batch ')} | {med((c, 'medvlm-bf16')):.2f} s | {med((c, 'pypi-bf16')):.2f} s | "
              f"**{mid(r):.2f}** | {med((c, 'medvlm-2t')):.2f} s | "
              f"{mrss((c, 'medvlm-bf16')):.0f} MB | {mrss((c, 'pypi-bf16')):.0f} MB |")


if __name__ == "__main__":
    main()
