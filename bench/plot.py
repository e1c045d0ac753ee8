#!/usr/bin/env python3
"""Turn alibi_bench's JSON output into PNG plots (and optionally a Markdown table of the medians).

    ./alibi_bench --benchmark_out=results.json --benchmark_out_format=json ...
    python3 bench/plot.py results.json --out-dir docs [--table]

Writes, for the families present in the file:
    perf_prefill.png   GFLOP/s vs sequence length per variant, one panel per head_dim (prefill family)
    perf_decode.png    K/V read bandwidth vs kv_len per variant, K/V type and thread count (decode family),
                       against the read bandwidth measured in the same binary
    perf_skipping.png  time vs length with and without ALiBi block skipping, and per-head speedups
Needs matplotlib (Debian: python3-matplotlib).
"""
import argparse
import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display needed
import matplotlib.pyplot as plt  # noqa: E402

TIME_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}
# Fields of a benchmark entry that are not user counters.
STANDARD_FIELDS = {
    "name", "family_index", "per_family_instance_index", "run_name", "run_type", "repetitions",
    "repetition_index", "threads", "iterations", "real_time", "cpu_time", "time_unit", "aggregate_name",
    "aggregate_unit", "error_occurred", "error_message", "label",
}


def parse_name(run_name):
    """'prefill/avx2/len:1024/heads:32/dim:64/threads:1/manual_time' -> ('prefill', 'avx2', {...})."""
    parts = run_name.split("/")
    params = {}
    for part in parts[2:]:
        if ":" in part:
            key, value = part.split(":", 1)
            params[key] = value
    return parts[0], parts[1] if len(parts) > 1 else "", params


def load_results(path):
    """One record per benchmark: the median over repetitions (Google Benchmark's median aggregate when
    present, else the median of the individual runs) of the time in seconds and of every counter."""
    with open(path) as handle:
        document = json.load(handle)
    runs = defaultdict(list)
    aggregated = {}
    for entry in document.get("benchmarks", []):
        if entry.get("error_occurred"):
            continue
        run_name = entry.get("run_name", entry["name"])
        values = {key: value for key, value in entry.items()
                  if key not in STANDARD_FIELDS and isinstance(value, (int, float))}
        values["seconds"] = entry["real_time"] * TIME_UNIT_SECONDS[entry.get("time_unit", "ns")]
        if entry.get("run_type") == "aggregate":
            if entry.get("aggregate_name") == "median":
                aggregated[run_name] = values
        else:
            runs[run_name].append(values)
    records = []
    for run_name in sorted(set(runs) | set(aggregated)):
        if run_name in aggregated:
            values = aggregated[run_name]
        else:
            keys = set().union(*(run.keys() for run in runs[run_name]))
            values = {key: statistics.median(run[key] for run in runs[run_name] if key in run) for key in keys}
        family, variant, params = parse_name(run_name)
        records.append({"name": run_name, "family": family, "variant": variant, "params": params, **values})
    return records, document.get("context", {})


def context_number(context, key):
    try:
        return float(context[key])
    except (KeyError, ValueError):
        return None


def plot_prefill(records, context, out_dir):
    rows = [r for r in records if r["family"] == "prefill" and "GFLOPs" in r]
    if not rows:
        return None
    head_dims = sorted({int(r["params"]["dim"]) for r in rows})
    columns = min(2, len(head_dims))
    lines = (len(head_dims) + columns - 1) // columns
    figure, axes = plt.subplots(lines, columns, figsize=(6 * columns, 4 * lines), squeeze=False)
    for axis, head_dim in zip(axes.flat, head_dims):
        by_variant = defaultdict(list)
        for r in rows:
            if int(r["params"]["dim"]) == head_dim:
                by_variant[r["variant"]].append((int(r["params"]["len"]), r["GFLOPs"]))
        for variant, points in sorted(by_variant.items()):
            points.sort()
            axis.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=variant)
        for isa in ("avx2", "avx512"):
            peak = context_number(context, f"alibi_fma_peak_gflops_{isa}")
            if peak:
                axis.axhline(peak, linestyle="--", linewidth=0.8, color="grey")
                axis.annotate(f"{isa} FMA peak", (0.01, peak), xycoords=("axes fraction", "data"),
                              fontsize=7, color="grey", va="bottom")
        axis.set_xscale("log", base=2)
        axis.set_title(f"causal ALiBi prefill, head_dim {head_dim}, 1 thread")
        axis.set_xlabel("sequence length (q_len = kv_len)")
        axis.set_ylabel("GFLOP/s (causal triangle)")
        axis.set_ylim(bottom=0)
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize=8)
    for axis in list(axes.flat)[len(head_dims):]:
        axis.set_visible(False)
    figure.tight_layout()
    path = out_dir / "perf_prefill.png"
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def plot_decode(records, context, out_dir):
    rows = [r for r in records if r["family"] == "decode" and "GBps" in r]
    if not rows:
        return None
    q_lens = sorted({int(r["params"]["q"]) for r in rows})
    figure, axes = plt.subplots(1, len(q_lens), figsize=(6 * len(q_lens), 4), squeeze=False)
    for axis, q_len in zip(axes.flat, q_lens):
        by_line = defaultdict(list)
        for r in rows:
            if int(r["params"]["q"]) == q_len:
                kv_type = r["params"].get("type", "f32")
                label = f"{r['variant']} {kv_type}, {r['params'].get('threads', '1')} thread(s)"
                by_line[(kv_type, label)].append((int(r["params"]["kv"]), r["GBps"]))
        markers = {"f32": "o", "bf16": "s", "f16": "^"}  # one marker per K/V element type
        for (kv_type, label), points in sorted(by_line.items()):
            points.sort()
            axis.plot([p[0] for p in points], [p[1] for p in points], marker=markers.get(kv_type, "x"), label=label)
        for key, value in context.items():
            if key.startswith("alibi_read_bandwidth_gbs_threads_"):
                threads = key.rsplit("_", 1)[1]
                axis.axhline(float(value), linestyle="--", linewidth=0.8, color="grey")
                axis.annotate(f"measured read bandwidth, {threads} thread(s)", (0.01, float(value)),
                              xycoords=("axes fraction", "data"), fontsize=7, color="grey", va="bottom")
        axis.set_xscale("log", base=2)
        axis.set_title(f"decode, q_len {q_len}, 32 query / 8 kv heads, head_dim 128")
        axis.set_xlabel("kv_len")
        axis.set_ylabel("K/V bytes read / s (GB/s)")
        axis.set_ylim(bottom=0)
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize=8)
    figure.tight_layout()
    path = out_dir / "perf_decode.png"
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def plot_skipping(records, out_dir):
    prefill = [r for r in records if r["family"] == "skip_prefill"]
    heads = [r for r in records if r["family"] == "skip_head" and "speedup_vs_noskip" in r]
    if not prefill and not heads:
        return None
    panels = (1 if prefill else 0) + (1 if heads else 0)
    figure, axes = plt.subplots(1, panels, figsize=(6 * panels, 4), squeeze=False)
    panel = iter(axes.flat)
    if prefill:
        axis = next(panel)
        by_line = defaultdict(list)
        for r in prefill:
            tolerance = r["params"].get("tol")
            label = f"{r['variant']}, " + ("no skipping" if tolerance == "0" else f"skipping (tol {tolerance})")
            by_line[label].append((int(r["params"]["len"]), r["seconds"]))
        for label, points in sorted(by_line.items()):
            points.sort()
            axis.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=label)
        axis.set_xscale("log", base=2)
        axis.set_yscale("log")
        axis.set_title("causal prefill, 8 heads (default slopes), head_dim 64, 1 thread")
        axis.set_xlabel("sequence length")
        axis.set_ylabel("time per call (s)")
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=8)
    if heads:
        axis = next(panel)
        variants = sorted({r["variant"] for r in heads})
        width = 0.8 / len(variants)
        for index, variant in enumerate(variants):
            points = sorted((int(r["params"]["head"]), r["speedup_vs_noskip"], r["params"].get("slope", ""))
                            for r in heads if r["variant"] == variant)
            axis.bar([p[0] + index * width for p in points], [p[1] for p in points], width=width, label=variant)
            axis.set_xticks([p[0] + 0.4 - width / 2 for p in points])
            axis.set_xticklabels([f"{p[0]}\nm={p[2]}" for p in points], fontsize=7)
        axis.set_yscale("log")
        axis.set_title("per head, 16384 tokens: speedup from skipping")
        axis.set_xlabel("head (slope)")
        axis.set_ylabel("time without / with skipping")
        axis.grid(True, axis="y", which="both", alpha=0.3)
        axis.legend(fontsize=8)
    figure.tight_layout()
    path = out_dir / "perf_skipping.png"
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def print_table(records, context):
    """Markdown table of the medians, to paste into bench/RESULTS.md."""
    for key in sorted(context):
        if key.startswith("alibi_"):
            print(f"- `{key}`: {context[key]}")
    print()
    counters = ["GFLOPs", "peak_frac", "speedup_vs_eigen", "speedup_vs_1thread", "GBps", "bw_frac",
                "time_vs_contiguous", "time_vs_f32", "speedup_vs_noskip", "max_rel_err_vs_naive"]
    present = [c for c in counters if any(c in r for r in records)]
    print("| benchmark | time (ms) | " + " | ".join(present) + " |")
    print("|---|---:|" + "---:|" * len(present))
    for r in records:
        cells = []
        for counter in present:
            value = r.get(counter)
            cells.append("" if value is None else (f"{value:.2e}" if counter.startswith("max_") else f"{value:.3g}"))
        name = r["name"].replace("/manual_time", "")
        print(f"| {name} | {r['seconds'] * 1e3:.3g} | " + " | ".join(cells) + " |")


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", help="JSON written by --benchmark_out=... --benchmark_out_format=json")
    parser.add_argument("--out-dir", default="docs", help="directory for the PNG files (default: docs)")
    parser.add_argument("--table", action="store_true", help="also print a Markdown table of the medians")
    args = parser.parse_args(argv)

    records, context = load_results(args.results)
    if not records:
        print(f"{args.results}: no successful benchmark runs", file=sys.stderr)
        return 1
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [plot_prefill(records, context, out_dir), plot_decode(records, context, out_dir),
               plot_skipping(records, out_dir)]
    for path in written:
        if path is not None:
            print(f"wrote {path}", file=sys.stderr)
    if args.table:
        print_table(records, context)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
