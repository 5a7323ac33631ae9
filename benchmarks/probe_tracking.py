"""How well a device-state probe point tracks a model's own GEMMs on this machine (planner.measure.probe).

Each round times, with caches flushed before each repetition as runs and profiles do, the candidate probes
(median of 5), then the targets (median of 3; a chain of GEMMs is flushed once before it, as in a forward pass).
--kind memory: fp32 M=1 GEMVs of 4096 x 4096 and 4096 x 11008 against one Llama-2-7B layer's decode GEMV
chain (q, k, v, o, gate, up, down) and the lm_head GEMV (4096 x 32000). --kind int8: the fp32 and the fbgemm int8
M=128 GEMM of 4096 x 4096 against a Llama layer's fbgemm int8 GEMMs at M=128 (a prefill) and at M=1. Over the
rounds it prints, per probe and target, the standard deviation of log(probe / its median) - log(target / its
median): the error a probe ratio would carry into a prediction scaled by it (lower is better), and their
correlation. Run it on an otherwise idle machine:

    .venv/bin/python benchmarks/probe_tracking.py [--threads 2] [--rounds 100] [--kind memory|int8] [--json]

Measured here (2026-11-23, 2-vCPU shared VM, fp32): 2 threads, 100 rounds: 4096 x 4096 vs chain s.d. 0.106
(corr 0.59), 4096 x 11008 vs chain 0.072 (0.79); 1 thread, 70 rounds: 0.114 (0.52) vs 0.107 (0.57).
--kind int8, 2 threads, 60 rounds: against the layer's fbgemm int8 GEMMs at M=128 the fp32 probe 0.159 (corr
-0.01), an fbgemm int8 probe 0.124 (0.37). Round to round the fp32 probe says nothing of the int8 kernel, yet over
minutes to hours it carried the machine's drift into w8a8 predictions (2-thread w8a8 prefills of the 23:48 and
00:26 campaigns: as measured -37..+5 %, scaled -14..+10 %); an int8 probe of its own is not built.
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

LLAMA_LAYER = [(4096, 4096)] * 4 + [(4096, 11008)] * 2 + [(11008, 4096)]
# kind -> (probes: name -> (scheme, M, K, N), targets: name -> (scheme, M, [(K, N), ...]))
KINDS = {
    "memory": ({"gemv 4096x4096": ("fp32", 1, 4096, 4096), "gemv 4096x11008": ("fp32", 1, 4096, 11008)},
               {"llama layer decode GEMVs": ("fp32", 1, LLAMA_LAYER), "lm_head gemv": ("fp32", 1, [(4096, 32000)])}),
    # does a run need a probe of its own int8 kernel? fbgemm int8 GEMMs at a prefill's M against both probes
    "int8": ({"fp32 M=128 4096x4096": ("fp32", 128, 4096, 4096),
              "int8-fbgemm M=128 4096x4096": ("int8-fbgemm", 128, 4096, 4096)},
             {"llama layer int8-fbgemm GEMMs M=128": ("int8-fbgemm", 128, LLAMA_LAYER),
              "llama layer int8-fbgemm GEMVs": ("int8-fbgemm", 1, LLAMA_LAYER)}),
}


def _gemm(scheme: str, m: int, k: int, n: int):
    import torch

    from planner.measure.microbench import _gemm_module
    mod = _gemm_module(scheme, k, n, "cpu")[0]
    x = torch.randn(m, k)
    return lambda: mod(x)


def measure(rounds: int, kind: str = "memory") -> list[dict]:
    import torch

    from planner.measure.microbench import _Sync, _timeit
    from planner.measure.profiler import Flusher
    flusher, sync = Flusher("cpu"), _Sync("cpu")
    probe_specs, target_specs = KINDS[kind]
    probes = {name: _gemm(*spec) for name, spec in probe_specs.items()}
    targets = {}
    for name, (scheme, m, shapes) in target_specs.items():
        fns = [_gemm(scheme, m, k, n) for k, n in shapes]
        targets[name] = (lambda fns: lambda: [f() for f in fns])(fns)
    out = []
    with torch.no_grad():
        for _ in range(rounds):
            row = {name: statistics.median(_timeit(fn, flusher, 5, sync)) for name, fn in probes.items()}
            row.update({name: statistics.median(_timeit(fn, flusher, 3, sync)) for name, fn in targets.items()})
            out.append(row)
    return out


def tracking(rows: list[dict], kind: str = "memory") -> list[dict]:
    med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    logs = [{k: math.log(r[k] / med[k]) for k in r} for r in rows]
    out = []
    for p in KINDS[kind][0]:
        for t in KINDS[kind][1]:
            a, b = [x[p] for x in logs], [x[t] for x in logs]
            out.append({"probe": p, "target": t, "sd_log_ratio": statistics.pstdev([u - v for u, v in zip(a, b)]),
                        "correlation": statistics.correlation(a, b) if len(a) > 2 else None,
                        "probe_median_s": med[p], "target_median_s": med[t]})
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=None, help="intra-op threads (default: torch's)")
    ap.add_argument("--rounds", type=int, default=100)
    ap.add_argument("--kind", choices=sorted(KINDS), default="memory",
                    help="memory: GEMV probes vs a decode's GEMVs; int8: fp32 and int8 probes vs fbgemm int8 GEMMs")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    if a.rounds < 3 or (a.threads is not None and a.threads < 1):
        print("error: --rounds must be >= 3 and --threads >= 1", file=sys.stderr)
        return 2
    import torch
    if a.threads:
        torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    res = tracking(measure(a.rounds, a.kind), a.kind)
    if a.json:
        print(json.dumps({"threads": torch.get_num_threads(), "rounds": a.rounds, "kind": a.kind, "rows": res}, indent=1))
        return 0
    print(f"{a.kind}: {torch.get_num_threads()} threads, {a.rounds} rounds, {time.perf_counter() - t0:.0f} s")
    for r in res:
        print(f"  {r['probe']:28s} vs {r['target']:36s} s.d. log ratio {r['sd_log_ratio']:.3f}  "
              f"corr {r['correlation']:.2f}  (medians {r['probe_median_s'] * 1e3:.2f} / {r['target_median_s'] * 1e3:.2f} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
