"""Analytic screen of a capacity plan, with the vectorised core: one planner.predict.evaluate() per (model,
precision) over every accelerator x batch size x tp gives memory fit, the single-request latency floor and the
throughput of one replica at the largest batch that still meets the latency target. What does not fit, or
whose floor already misses the target, is dropped; the rest become Candidates with a starting replica count
(peak arrival rate / throughput) and a yearly-cost lower bound that orders the simulations (planner.sizing).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from planner import catalog
from planner.cost import HOURS_PER_YEAR, fleet_costs
from planner.errors import PlannerError
from planner.service_tables import gpu_tables, prompt_lengths
from planner.units import HOUR
from planner.workload_specs import Workload

FALLBACK = {"bf16": "fp16", "fp16": "bf16"}    # a GPU without one 16-bit type runs the other
TPS = (1, 2, 4, 8)
BATCHES = np.array([1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256], dtype=float)
HEADROOM = 0.8          # the analytic start uses batches whose service time is <= 80 % of the target


@dataclass(frozen=True)
class Candidate:
    workload: Workload
    gpu: str
    precision: str
    tp: int
    n_lo: int                 # replicas by the throughput bound at the peak rate
    n_start: int              # replicas at a batch that meets the target with headroom
    floor_s: float            # one study alone (latency, or TTFT for TTFT-only targets)
    lb_usd: float | None      # yearly cost lower bound: capex of n_start replicas + idle power
    memory_gb_per_gpu: float


def peak_rate(w: Workload) -> float:
    """Studies per second the fleet must sustain: the busiest hour, or a batch over its deadline."""
    a = w.arrivals
    if a.kind == "batch":
        return a.batch_size / (w.target.deadline_h * HOUR)
    return w.peak_per_hour() / HOUR


def studies_per_year(w: Workload) -> float:
    """Batch jobs count as one run per simulated day (a nightly job); see the assumptions list."""
    return w.studies_per_day() * 365


def cost_lower_bound(acc, count: int, w: Workload, params) -> float | None:
    """Yearly cost of ``count`` accelerators that stay idle all year: no option with that many is cheaper.
    MIG slices are costed as their share of the physical GPU (planner.mig.as_physical)."""
    from planner.mig import as_physical
    acc, count = as_physical(acc, count)
    idle_kwh = acc.power.idle_w * count * HOURS_PER_YEAR / 1000
    return fleet_costs(acc, count, idle_kwh, studies_per_year(w), params)["tco_per_year_usd"]


def _precision_masks(accs, precisions):
    """(precision id, per-accelerator mask): a 16-bit type an accelerator lacks falls back to the other one."""
    from planner.quant import check_supported, load_precision
    out = []
    for pid in precisions:
        p = load_precision(pid)
        ok = []
        for a in accs:
            try:
                check_supported(a, p)
                ok.append(True)
            except PlannerError:
                ok.append(False)
        out.append((p.id, np.array(ok)))
    for pid, ok in list(out):
        alt = FALLBACK.get(pid)
        if alt and alt not in [o[0] for o in out] and not ok.all():
            out.append((alt, ~ok))
    return out


def _grid(w: Workload, plan, p, accs, eng, cal, spec):
    """evaluate() over accelerator x batch x tp: (results, tps, usable, one study's latency, TTFT, TPOT,
    studies per second of one replica)."""
    from planner.predict import evaluate
    table, vtable = gpu_tables(accs, plan, p, cal)
    vision_only = plan.decode is None
    tps = np.array([1.0] if vision_only else TPS)
    gi, b, tp = np.arange(len(accs))[:, None, None], BATCHES[None, :, None], tps[None, None, :]
    with np.errstate(all="ignore"):
        if vision_only:
            r = evaluate(plan, table, vtable, gi, b, 0, 0, tp, 1, eng, cal)
            per = np.ceil(w.images_per_study)
            lat = r["latency_s"] * np.maximum(per / b, 1.0)        # one study's images at batch b
            thr = b / r["latency_s"] / w.images_per_study
            ttft, tpot = lat, np.zeros_like(lat)
        else:
            _, i_eff, _ = prompt_lengths(w, plan, spec)
            r = evaluate(plan, table, vtable, gi, b, i_eff, w.output_tokens, tp, 1, eng, cal)
            lat, ttft, tpot = r["e2e_s"] * w.calls_per_study, r["ttft_s"], r["tpot_s"]
            thr = b / r["e2e_s"] / w.calls_per_study
    ok = r["supported"] & r["fits"]
    if vtable is not None:
        ok = ok & vtable.supported[:, None, None]
    return r, tps, ok, lat, ttft, tpot, thr


def screen(w: Workload, accs, precisions, engine: str, params, max_gpus: int):
    """Vectorised screen of accelerator x precision x tp for one workload: (candidates, rejected)."""
    from planner.api import _engine, model_plan
    from planner.quant import load_precision
    cal, eng = catalog.load_calibration(), _engine(engine)
    spec = catalog.load_model(w.model)
    lam, t = peak_rate(w), w.target
    cands, rejected = [], []
    for pid, mask in _precision_masks(accs, precisions):
        p = load_precision(pid)
        r, tps, ok, lat, ttft, tpot, thr = _grid(w, model_plan(w.model, p.id), p, accs, eng, cal, spec)
        b = BATCHES[None, :, None]
        maxb = r["max_batch"][:, :1, :]
        valid = ok & mask[:, None, None] & (b <= np.maximum(maxb, 1)) & (maxb >= 1)
        allowed = valid.copy()
        for got, want in ((lat, t.p95_latency_s), (ttft, t.p95_ttft_s)):
            if want is not None:
                allowed &= got <= HEADROOM * want
        if t.min_tokens_per_s_per_user is not None:
            allowed &= tpot <= 1.0 / t.min_tokens_per_s_per_user
        floor = np.where(t.p95_latency_s is not None, lat, ttft)[:, 0, :]
        thr_max = np.where(valid, thr, 0).max(axis=1)
        thr_ok = np.where(allowed, thr, 0).max(axis=1)
        for g, acc in enumerate(accs):
            for k, n_tp in enumerate(tps.astype(int)):
                row = {"workload": w.id, "gpu": acc.id, "precision": p.id, "tp": int(n_tp)}
                why = _reject_reason(valid[g, 0, k], allowed[g, :, k].any(), floor[g, k], t, acc, n_tp, r, g, k)
                if why:
                    if mask[g] and why != "tp":
                        rejected.append({**row, "reason": why, "floor_s": _f(floor[g, k])})
                    continue
                n_lo = max(1, math.ceil(lam / thr_max[g, k]))
                n_start = max(n_lo, math.ceil(lam / thr_ok[g, k]))
                if n_start * n_tp > max_gpus:
                    rejected.append({**row, "count": int(n_start * n_tp),
                                     "reason": f"needs about {n_start * n_tp} GPUs, more than max_gpus {max_gpus}",
                                     "floor_s": _f(floor[g, k])})
                    continue
                lb = cost_lower_bound(acc, n_start * n_tp, w, params)
                cands.append(Candidate(w, acc.id, p.id, int(n_tp), n_lo, n_start, float(floor[g, k]), lb,
                                       float(r["memory_gb_per_gpu"][g, 0, k])))
    return cands, rejected


def _reject_reason(fits, any_allowed, floor, t, acc, tp, r, g, k) -> str | None:
    if not bool(r["supported"][g, 0, k]):
        return "tp" if tp > acc.interconnect.max_gpus_per_node else "precision not supported"
    if not fits:
        return (f"does not fit: {float(r['memory_gb_per_gpu'][g, 0, k]):.1f} GB per GPU needed, "
                f"{acc.memory.capacity_gb:g} GB available")
    if not any_allowed:
        return f"one study alone takes {floor:.3g} s (floor), too slow for {t.describe()}"
    return None


def _f(x) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None
