"""How well a device-state probe point tracks a model's own GEMVs on this machine (planner.measure.probe).

Each round times, with caches flushed before each repetition as runs and profiles do: the candidate memory
probes (fp32 M=1 GEMVs of 4096 x 4096 and 4096 x 11008, median of 5), then the targets (median of 3): one
Llama-2-7B layer's decode GEMV chain (q, k, v, o, gate, up, down; flushed once before the chain, as a decode
step) and the lm_head GEMV (4096 x 32000). Over the rounds it prints, per probe and target, the standard
deviation of log(probe / its median) - log(target / its median): the error a probe ratio would carry into a
prediction scaled by it (lower is better), and the correlation of the two. Run it on an otherwise idle machine:

    .venv/bin/python benchmarks/probe_tracking.py [--threads 2] [--rounds 100] [--json]

Measured here (2026-11-23, 2-vCPU shared VM, fp32): 2 threads, 100 rounds: 4096 x 4096 vs chain s.d. 0.106
(corr 0.59), 4096 x 11008 vs chain 0.072 (0.79); 1 thread, 70 rounds: 0.114 (0.52) vs 0.107 (0.57).
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PROBES = {"gemv 4096x4096": (4096, 4096), "gemv 4096x11008": (4096, 11008)}
LLAMA_LAYER_GEMVS = [(4096, 4096)] * 4 + [(4096, 11008)] * 2 + [(11008, 4096)]
LM_HEAD = (4096, 32000)


def _gemv(k: int, n: int):
    import torch

    from planner.measure.microbench import _gemm_module
    mod = _gemm_module("fp32", k, n, "cpu")[0]
    x = torch.randn(1, k)
    return lambda: mod(x)


def measure(rounds: int) -> list[dict]:
    import torch

    from planner.measure.microbench import _Sync, _timeit
    from planner.measure.profiler import Flusher
    flusher, sync = Flusher("cpu"), _Sync("cpu")
    probes = {name: _gemv(*kn) for name, kn in PROBES.items()}
    chain_fns = [_gemv(*kn) for kn in LLAMA_LAYER_GEMVS]
    targets = {"llama layer decode GEMVs": lambda: [f() for f in chain_fns], "lm_head gemv": _gemv(*LM_HEAD)}
    out = []
    with torch.no_grad():
        for _ in range(rounds):
            row = {name: statistics.median(_timeit(fn, flusher, 5, sync)) for name, fn in probes.items()}
            row.update({name: statistics.median(_timeit(fn, flusher, 3, sync)) for name, fn in targets.items()})
            out.append(row)
    return out


def tracking(rows: list[dict]) -> list[dict]:
    med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    logs = [{k: math.log(r[k] / med[k]) for k in r} for r in rows]
    out = []
    for p in PROBES:
        for t in ("llama layer decode GEMVs", "lm_head gemv"):
            a, b = [x[p] for x in logs], [x[t] for x in logs]
            out.append({"probe": p, "target": t, "sd_log_ratio": statistics.pstdev([u - v for u, v in zip(a, b)]),
                        "correlation": statistics.correlation(a, b) if len(a) > 2 else None,
                        "probe_median_s": med[p], "target_median_s": med[t]})
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=None, help="intra-op threads (default: torch's)")
    ap.add_argument("--rounds", type=int, default=100)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    if a.rounds < 3 or (a.threads is not None and a.threads < 1):
        print("error: --rounds must be >= 3 and --threads >= 1", file=sys.stderr)
        return 2
    import torch
    if a.threads:
        torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    res = tracking(measure(a.rounds))
    if a.json:
        print(json.dumps({"threads": torch.get_num_threads(), "rounds": a.rounds, "rows": res}, indent=1))
        return 0
    print(f"{torch.get_num_threads()} threads, {a.rounds} rounds, {time.perf_counter() - t0:.0f} s")
    for r in res:
        print(f"  {r['probe']:16s} vs {r['target']:25s} s.d. log ratio {r['sd_log_ratio']:.3f}  "
              f"corr {r['correlation']:.2f}  (medians {r['probe_median_s'] * 1e3:.2f} / {r['target_median_s'] * 1e3:.2f} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
