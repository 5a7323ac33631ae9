"""Fit the empirical efficiency factors of data/calibration/efficiency.yaml to published measurements.

Usage: .venv/bin/python benchmarks/fit_efficiency.py [--write] [--csv data/reference/published_dev.csv]

A handful of GLOBAL, physically bounded parameters (achievable fractions of peak, per-step overhead, the
compute/memory overlap exponent) are fitted by minimising the mean absolute log error over every usable row:
nothing is tuned per row, per GPU or per model. Bounds keep each factor physical (a fraction of peak in
(0, 1], an overhead of microseconds to milliseconds). Deterministic: Nelder-Mead from fixed starting values.
"""
import argparse
import copy
import datetime as dt
import math
import sys
from pathlib import Path

import numpy as np
from scipy.optimize import minimize

from planner import catalog
from planner.efficiency import Calibration
from planner.validate import PUBLISHED_DEV, mdape, predict_row, read_rows

# (dotted path(s) in efficiency.yaml, lower bound, upper bound). Paths joined by "|" share one value: eager
# PyTorch and torch.compile call the same cuBLAS/cuDNN kernels, so their GEMM and conv fractions are tied.
# What each one is fitted from, in short:
FIT = [
    ("engines.optimized.gemm_compute_frac", 0.40, 0.90),   # TensorRT-LLM fp16 TTFT rows (prefill GEMMs)
    ("precisions.fp8.gemm_scale", 0.50, 1.10),              # FP8 TensorRT-LLM rows, relative to fp16/bf16
    ("engines.optimized.conv_compute_frac", 0.15, 0.90),    # MLPerf ResNet-50
    ("engines.optimized.mem_frac", 0.60, 0.95),             # large-batch decode (weights + KV streaming)
    ("engines.optimized.step_overhead_s", 1e-5, 5e-3),      # batch-1 TTFT floor
    ("engines.optimized.overlap_p", 2.0, 8.0),              # balanced prefill GEMMs at 128 tokens
    ("engines.optimized.request_overhead_s", 0.0, 5e-3),    # batch-1 TTFT: request setup before the first step
    ("link_latency_s", 1e-6, 2e-5),                         # gpt-fast tensor-parallel rows (small all-reduces)
    # gpt-fast batch-1 decode; upper bound 0.85: its README measures ~1,700 of 2,039 GB/s on those A100s
    ("engines.compiled.mem_frac", 0.55, 0.85),
    ("precisions.w8a16.mem_scale", 0.50, 1.10),             # gpt-fast int8 weight-only decode (dequant in-kernel)
    ("engines.eager.conv_compute_frac|engines.compiled.conv_compute_frac", 0.15, 0.90),  # timm, DLE CNNs
    ("engines.eager.gemm_compute_frac|engines.compiled.gemm_compute_frac", 0.30, 0.90),  # timm ViT-B/16
]
# Fixed starting point (physically typical values), so the fit does not depend on the file it rewrites.
START = [0.7, 1.0, 0.5, 0.85, 1e-4, 3.0, 5e-4, 5e-6, 0.8, 1.0, 0.5, 0.6]


def _set(d, paths, v):
    for path in paths.split("|"):
        node = d
        keys = path.split(".")
        for k in keys[:-1]:
            node = node.setdefault(k, {})
        node[keys[-1]] = v


def to_unit(x, lo, hi):
    return math.log((x - lo) / (hi - x))


def from_unit(u, lo, hi):
    return lo + (hi - lo) / (1 + math.exp(-u))


def predictions(base: dict, values, rows):
    d = copy.deepcopy(base)
    for (path, lo, hi), v in zip(FIT, values):
        _set(d, path, float(v))
    cal = Calibration.model_validate(d)
    with catalog.use_calibration(cal):
        return [predict_row(r) for r in rows], d


def loss(u, base, rows):
    vals = [from_unit(x, lo, hi) for x, (_, lo, hi) in zip(u, FIT)]
    res, _ = predictions(base, vals, rows)
    errs = [abs(math.log(r.predicted / r.measured)) for r in res if r.predicted]
    return float(np.mean(errs))


def start_point():
    x0 = [min(max(x, lo + 1e-3 * (hi - lo)), hi - 1e-3 * (hi - lo)) for x, (_, lo, hi) in zip(START, FIT)]
    return x0, np.array([to_unit(x, lo, hi) for x, (_, lo, hi) in zip(x0, FIT)])


def fit(base, rows, u0, maxiter=2000):
    """Nelder-Mead in the unbounded (logit) space, from a simplex with steps of 0.7 in each coordinate."""
    simplex = np.vstack([u0] + [u0 + 0.7 * np.eye(len(u0))[i] for i in range(len(u0))])
    return minimize(loss, u0, args=(base, rows), method="Nelder-Mead",
                    options={"maxiter": maxiter, "xatol": 1e-3, "fatol": 1e-5, "initial_simplex": simplex})


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--csv", type=Path, default=PUBLISHED_DEV)
    ap.add_argument("--write", action="store_true", help="write the fitted values to efficiency.yaml")
    args = ap.parse_args()
    rows = read_rows(args.csv)
    base = catalog.load_calibration().model_dump()
    base["precisions"].setdefault("fp8", {"gemm_scale": 1.0, "mem_scale": 1.0, "basis": ""})
    x0, u0 = start_point()
    before, _ = predictions(base, x0, rows)
    opt = fit(base, rows, u0)
    vals = [from_unit(x, lo, hi) for x, (_, lo, hi) in zip(opt.x, FIT)]
    after, fitted = predictions(base, vals, rows)
    for (path, lo, hi), v0, v in zip(FIT, x0, vals):
        print(f"{path.split('|')[0]:42} {v0:10.4g} -> {v:10.4g}   bounds [{lo:g}, {hi:g}]")
    print(f"mean |log error| {loss(u0, base, rows):.3f} -> {opt.fun:.3f}; MdAPE {mdape(before):.1f} % -> {mdape(after):.1f} %")
    if args.write:
        fitted["fitted_on"] = dt.date.today().isoformat()
        fitted["fit_mdape_pct"] = round(mdape(after), 2)
        fitted["crossval_mdape_pct"] = None     # stale after a refit: run benchmarks/crossval.py --write
        fitted["fitted_parameters"] = [q for p, _, _ in FIT for q in p.split("|")]
        fitted["description"] = (f"Efficiency factors fitted by benchmarks/fit_efficiency.py on {len(rows)} rows of "
                                 f"{args.csv.name}: global parameters only (see fitted_parameters); the rest are "
                                 "assumptions with their basis stated.")
        fitted["precisions"]["fp8"]["basis"] = "fitted: FP8 TensorRT-LLM rows of published_dev.csv"
        fitted["precisions"]["w8a16"]["basis"] = "fitted: gpt-fast int8 weight-only rows of published_dev.csv"
        for k, v in fitted["engines"].items():
            fitted["engines"][k] = {kk: (round(vv, 6) if isinstance(vv, float) else vv) for kk, vv in v.items()}
        catalog.write_yaml_atomic(catalog.CALIBRATION_FILE, fitted,
                                  header="# Written by benchmarks/fit_efficiency.py --write; see planner/efficiency.py\n")
        print(f"wrote {catalog.CALIBRATION_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
