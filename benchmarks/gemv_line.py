"""A GEMV's time over the bytes it streams: a fixed cost per call plus bytes over a rate (microbench.gemv_line).

``time``: the M=1 GEMVs of Llama-2-7B's projections (square, MLP up and down, fused QKV 4096 x 12288, fused
gate/up 4096 x 22016) through the very modules the recipes run (microbench._gemm_module: prepacked fp32, fbgemm's
int8 linear), timed in rounds (every shape once per round) with the cache flushed before each, as the profile does;
``--after-gemv`` also times each after the flush and one GEMV of another weight through the same kernel. It prints
each shape's median and minimum, the line fitted to the medians and what one rate through the origin (the
profile's model before the line) predicts instead.

``revalidate``: every committed CPU run validated against its device's profile with the line and without it
(GEMV_MIN_CALL set out of reach: one rate, no per-call cost): within 15 % end to end, per device and phase.

    .venv/bin/python benchmarks/gemv_line.py time [--rounds 11] [--threads 2] [--after-gemv] [--json]
    .venv/bin/python benchmarks/gemv_line.py revalidate [--json]

Measured here (2026-11-23, 2-vCPU shared VM, Xeon model 207, torch 2.13 CPU, 2 threads, 11 rounds, medians):
06:40 UTC, fbgemm int8 flushed 1.53 / 2.77 / 2.71 / 3.00 / 4.94 ms for 16.8 / 45.1 / 45.1 / 50.4 / 90.2 MB: line
0.67 ms per call + 21.4 GB/s, every shape within 4.5 %, where one rate through the origin (16.3 GB/s) is -32.3 %
at 16.8 MB and +12.3 % at 90.2 MB; after another int8 GEMV 1.14 / 2.45 / 2.49 / 2.58 / 4.73 ms. fp32 line
0.67 ms + 27.5 GB/s (origin 24.7 GB/s: -14.3 % at 67 MB, +5.7 % at 361 MB). An earlier run (05:20 UTC) read the
int8 line at ~1 ms + 21 GB/s, and an int8 GEMV after an fp32 one as slow as after the flush. revalidate at 06:45
UTC (245 committed CPU phases; runs from before 05:00 UTC against their device's 05:43 / 02:55 profiles): 196
within 15 % with one rate, 207 with the line (2-thread decodes 60 -> 67 of 75, prefills 62 -> 65; 1-thread
phases 74 -> 75 of 95).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SHAPES = ((4096, 4096), (4096, 11008), (11008, 4096), (4096, 12288), (4096, 22016))
SCHEMES = ("fp32", "int8-fbgemm")


def time_gemvs(rounds: int, after_gemv: bool) -> dict:
    import torch

    from planner.measure.allocator import keep_freed_memory
    from planner.measure.microbench import _gemm_module, gemv_line
    from planner.measure.profiler import Flusher
    keep_freed_memory()
    torch.manual_seed(0)
    flush = Flusher("cpu")
    conds = ("flushed", "after_gemv") if after_gemv else ("flushed",)
    out = {}
    with torch.no_grad():
        for scheme in SCHEMES:
            mods = {s: _gemm_module(scheme, *s, "cpu") for s in SHAPES}
            other, dt = _gemm_module(scheme, 4096, 11008, "cpu")[:2]
            xo = torch.randn(1, 4096).to(dt)
            xs = {s: torch.randn(1, s[0]).to(mods[s][1]) for s in SHAPES}
            for s in SHAPES:
                mods[s][0](xs[s])
            ts = {(s, c): [] for s in SHAPES for c in conds}
            for _ in range(rounds):
                for s in SHAPES:
                    for c in conds:
                        flush()
                        if c == "after_gemv":
                            other(xo)
                        t0 = time.perf_counter()
                        mods[s][0](xs[s])
                        ts[(s, c)].append(time.perf_counter() - t0)
            rows = []
            for s in SHAPES:
                _, _, wb, ib, ob = mods[s]
                nbytes = s[0] * s[1] * wb + s[0] * ib + s[1] * ob
                rows.append({"k": s[0], "n": s[1], "bytes": nbytes,
                             **{f"{c}_median_s": statistics.median(ts[(s, c)]) for c in conds},
                             **{f"{c}_min_s": min(ts[(s, c)]) for c in conds}})
            call, rate = gemv_line([(r["bytes"], r["flushed_median_s"]) for r in rows])
            origin = statistics.median(r["bytes"] / r["flushed_median_s"] for r in rows[:3])   # the profile's shapes
            out[scheme] = {"rows": rows, "call_overhead_s": call, "stream_bytes_s": rate, "origin_rate_s": origin}
    return {"threads": torch.get_num_threads(), "rounds": rounds, "torch": torch.__version__, "schemes": out}


def print_times(res: dict) -> None:
    print(f"{res['threads']} threads, {res['rounds']} rounds, torch {res['torch']}; medians (min) in ms")
    for scheme, r in res["schemes"].items():
        print(f"{scheme}: line {r['call_overhead_s'] * 1e3:.3f} ms per call + {r['stream_bytes_s'] / 1e9:.1f} GB/s; "
              f"one rate through the origin (profile shapes' median) {r['origin_rate_s'] / 1e9:.1f} GB/s")
        for row in r["rows"]:
            line = r["call_overhead_s"] + row["bytes"] / r["stream_bytes_s"]
            orig = row["bytes"] / r["origin_rate_s"]
            after = (f"  after a GEMV {row['after_gemv_median_s'] * 1e3:6.2f} ({row['after_gemv_min_s'] * 1e3:.2f})"
                     if "after_gemv_median_s" in row else "")
            print(f"  {row['k']:>5} x {row['n']:<5} {row['bytes'] / 1e6:7.1f} MB  flushed "
                  f"{row['flushed_median_s'] * 1e3:6.2f} ({row['flushed_min_s'] * 1e3:.2f}){after}   line "
                  f"{line * 1e3:6.2f} ({(line / row['flushed_median_s'] - 1) * 100:+5.1f} %)   origin "
                  f"{orig * 1e3:6.2f} ({(orig / row['flushed_median_s'] - 1) * 100:+5.1f} %)")


def revalidate() -> dict:
    from planner.measure import microbench as mb
    from planner.validate import validate_run
    runs = sorted(Path("data/measurements").glob("cpu-*/*/*/*.csv"))

    def errors() -> dict:
        mb._gemm_fit_of.cache_clear()
        out = {}
        for f in runs:
            for ph, v in validate_run(f)["e2e"].items():
                out[f"{f.relative_to('data/measurements')}:{ph}"] = v["error_pct"]
        return out
    with_line = errors()
    keep = mb.GEMV_MIN_CALL
    mb.GEMV_MIN_CALL = float("inf")
    try:
        one_rate = errors()
    finally:
        mb.GEMV_MIN_CALL = keep
        mb._gemm_fit_of.cache_clear()
    groups: dict[str, list[str]] = {}
    for k in with_line:
        dev, rest = k.split("/", 1)
        groups.setdefault(f"{dev} {k.rsplit(':', 1)[1]}", []).append(k)
    return {g: {"phases": len(ks), "within_15_one_rate": sum(abs(one_rate[k]) <= 15 for k in ks),
                "within_15_line": sum(abs(with_line[k]) <= 15 for k in ks),
                "median_abs_one_rate": statistics.median(abs(one_rate[k]) for k in ks),
                "median_abs_line": statistics.median(abs(with_line[k]) for k in ks)} for g, ks in sorted(groups.items())}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("what", choices=("time", "revalidate"))
    ap.add_argument("--rounds", type=int, default=11)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--after-gemv", action="store_true")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if a.what == "time":
        import torch
        if a.threads:
            torch.set_num_threads(a.threads)
        res = time_gemvs(a.rounds, a.after_gemv)
        print(json.dumps(res, indent=1)) if a.json else print_times(res)
        return 0
    res = revalidate()
    if a.json:
        print(json.dumps(res, indent=1))
        return 0
    print(f"{'device and phase':<48} {'phases':>6} {'within 15 % one rate / line':>28} {'median |e| one rate / line':>28}")
    for g, r in res.items():
        print(f"{g:<48} {r['phases']:>6} {r['within_15_one_rate']:>14} / {r['within_15_line']:<11} "
              f"{r['median_abs_one_rate']:>13.1f} / {r['median_abs_line']:.1f}")
    tot = lambda k: sum(r[k] for r in res.values())  # noqa: E731
    print(f"{'all':<48} {tot('phases'):>6} {tot('within_15_one_rate'):>14} / {tot('within_15_line')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
