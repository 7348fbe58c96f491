#!/usr/bin/env python3
"""Summarise bench/baselines.sh output (JSON lines) as the Markdown tables of BENCHMARKS.md.

usage: summarize.py results.jsonl

For each workload (vision batch 1/8/32, text length 77 / padded to the longest) and each
runner, the median over rounds of the throughput each run reported (itself a median of its
timed repetitions), the peak RSS, and the ratios of medvlm to PyTorch and ONNX Runtime, and,
where the sitting ran them (baselines.sh with PYPI_PYTHON), to PyPI's PyTorch and OpenVINO.
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
        if out.get("bench") == "text":
            return f"text-l{out['len']}", out["per_s"]
        return None, None  # the "cpu" line every run starts with
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
        if w is None:
            continue
        per[(w, rec["who"])].append(v)
        rss[(w, rec["who"])].append(rec["max_rss_kb"] / 1024)
    runners = ["medvlm-1t", "medvlm-2t", "torch-1t", "ort-2t", "pypi-2t", "openvino-2t"]
    names = {"vision-b1": "vision, batch 1", "vision-b8": "vision, batch 8",
             "vision-b32": "vision, batch 32", "text-l77": "text, 16 prompts, length 77",
             "text-l18": "text, 16 prompts, padded to longest (18)"}
    unit = lambda w: "images/s" if w.startswith("vision") else "prompts/s"
    print("| workload | medvlm 1 thread | medvlm 2 threads | PyTorch 1 thread | ONNX Runtime 2 threads "
          "| PyPI PyTorch 2 threads | OpenVINO 2 threads | medvlm / PyTorch | medvlm / ORT "
          "| medvlm / PyPI PyTorch | medvlm / OpenVINO |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for w in names:
        med = {r: statistics.median(per[(w, r)]) for r in runners if per.get((w, r))}
        if not med:
            continue
        best = max(med.get("medvlm-1t", 0), med.get("medvlm-2t", 0))
        cells = [f"{med[r]:.1f}" if r in med else "-" for r in runners]
        ratios = [f"{best / med[r]:.2f}x" if med.get(r) else "-"
                  for r in ("torch-1t", "ort-2t", "pypi-2t", "openvino-2t")]
        print(f"| {names[w]} ({unit(w)}) | " + " | ".join(cells + ratios) + " |")
    print()
    print("| workload | peak RSS medvlm 2t | PyTorch | ONNX Runtime | PyPI PyTorch | OpenVINO "
          "| medvlm / PyTorch |")
    print("|---|---|---|---|---|---|---|")
    for w in names:
        r = {k: statistics.median(rss[(w, k)]) for k in runners if rss.get((w, k))}
        if "medvlm-2t" not in r:
            continue
        ratio = f"{100 * r['medvlm-2t'] / r['torch-1t']:.0f}%" if r.get("torch-1t") else "-"
        mb = lambda k: f"{r[k]:.0f} MB" if k in r else "-"
        print(f"| {names[w]} | {mb('medvlm-2t')} | {mb('torch-1t')} | {mb('ort-2t')} | "
              f"{mb('pypi-2t')} | {mb('openvino-2t')} | {ratio} |")
    bf = [w for w in names if per.get((w, "medvlm-bf16")) or per.get((w, "openvino-bf16"))]
    if bf:
        print()
        print("| workload | medvlm bf16 2 threads | OpenVINO bf16 2 threads | medvlm bf16 / OpenVINO "
              "bf16 | medvlm fp32 2 threads | OpenVINO fp32 2 threads |")
        print("|---|---|---|---|---|---|")
    for w in bf:
        m = {r: statistics.median(per[(w, r)]) for r in
             ("medvlm-bf16", "openvino-bf16", "medvlm-2t", "openvino-2t") if per.get((w, r))}
        cell = lambda r: f"{m[r]:.1f}" if r in m else "-"
        ratio = (f"{m['medvlm-bf16'] / m['openvino-bf16']:.2f}x"
                 if "medvlm-bf16" in m and "openvino-bf16" in m else "-")
        print(f"| {names[w]} ({unit(w)}) | {cell('medvlm-bf16')} | {cell('openvino-bf16')} | "
              f"{ratio} | {cell('medvlm-2t')} | {cell('openvino-2t')} |")


if __name__ == "__main__":
    main()
