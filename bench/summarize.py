#!/usr/bin/env python3
"""Summarise bench/baselines.sh output (JSON lines) as the Markdown tables of BENCHMARKS.md.

usage: summarize.py results.jsonl

For each workload (vision batch 1/8/32, text length 77 / padded to the longest) and each
runner, the median over rounds of the throughput each run reported (itself a median of its
timed repetitions), the peak RSS, and the ratios of medvlm to PyTorch and ONNX Runtime.
"""
import json
import statistics
import sys
from collections import defaultdict


def workload(rec):
    out, cfg = rec["out"], rec["config"]
    if rec["who"].startswith("medvlm"):
        if out.get("bench") == "vision":
            return f"vision-b{out['batch']}", out["per_s"]
        return f"text-l{out['len']}", out["per_s"]
    if rec["who"].startswith("torch"):
        per = out.get("images_per_s") or out.get("prompts_per_s") or out.get("per_s")
        return cfg, per
    return cfg, out["per_s"]


def main():
    per = defaultdict(list)
    rss = defaultdict(list)
    for line in open(sys.argv[1]):
        line = line.strip()
        if not line.startswith("{"):
            continue
        rec = json.loads(line)
        w, v = workload(rec)
        per[(w, rec["who"])].append(v)
        rss[(w, rec["who"])].append(rec["max_rss_kb"] / 1024)
    runners = ["medvlm-1t", "medvlm-2t", "torch-1t", "ort-2t"]
    names = {"vision-b1": "vision, batch 1", "vision-b8": "vision, batch 8",
             "vision-b32": "vision, batch 32", "text-l77": "text, 16 prompts, length 77",
             "text-l18": "text, 16 prompts, padded to longest (18)"}
    unit = lambda w: "images/s" if w.startswith("vision") else "prompts/s"
    print("| workload | medvlm 1 thread | medvlm 2 threads | PyTorch 1 thread | ONNX Runtime 2 threads "
          "| medvlm / PyTorch | medvlm / ORT |")
    print("|---|---|---|---|---|---|---|")
    for w in names:
        med = {r: statistics.median(per[(w, r)]) for r in runners if per.get((w, r))}
        if not med:
            continue
        best = max(med.get("medvlm-1t", 0), med.get("medvlm-2t", 0))
        cells = [f"{med[r]:.1f}" if r in med else "-" for r in runners]
        rt = f"{best / med['torch-1t']:.2f}x" if med.get("torch-1t") else "-"
        ro = f"{best / med['ort-2t']:.2f}x" if med.get("ort-2t") else "-"
        print(f"| {names[w]} ({unit(w)}) | " + " | ".join(cells) + f" | {rt} | {ro} |")
    print()
    print("| workload | peak RSS medvlm 2t | PyTorch | ONNX Runtime | medvlm / PyTorch |")
    print("|---|---|---|---|---|")
    for w in names:
        r = {k: statistics.median(rss[(w, k)]) for k in runners if rss.get((w, k))}
        if "medvlm-2t" not in r:
            continue
        ratio = f"{100 * r['medvlm-2t'] / r['torch-1t']:.0f}%" if r.get("torch-1t") else "-"
        print(f"| {names[w]} | {r['medvlm-2t']:.0f} MB | {r.get('torch-1t', 0):.0f} MB | "
              f"{r.get('ort-2t', 0):.0f} MB | {ratio} |")


if __name__ == "__main__":
    main()
