"""Options of a capacity plan: per accelerator type (and, for a department, LLM precision) a Group of screened
candidates for each workload; evaluate_group sizes them by simulation and packs a department onto one fleet;
assemble turns the clusters into one JSON-ready option (fleet, simulated latencies, utilisation, energy, costs).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from planner import catalog
from planner.cost import HOURS_PER_YEAR, fleet_costs
from planner.fleet import Placed, pack, replica_tp, solo_cluster
from planner.mig import as_physical, relabel
from planner.screen import FALLBACK, Candidate, cost_lower_bound, studies_per_year
from planner.serving import target_ratio
from planner.sizing import size
from planner.workload_specs import Department, Workload

@dataclass
class Group:
    """One option to simulate: an accelerator type with, per workload, candidates in cost order."""
    gpu: str
    precision: str
    per_workload: list[list[Candidate]]
    lb_usd: float | None
    n_gpus_guess: int


def make_groups(kind: str, workloads: list[Workload], screened: dict, llm_precisions, params) -> list[Group]:
    """The options to simulate: for one workload, each screened candidate; for a department, each accelerator
    type x LLM precision, with the two cheapest candidates of every workload."""
    if kind == "workload":
        return [Group(c.gpu, c.precision, [[c]], c.lb_usd, c.n_start * c.tp) for c in screened[workloads[0].id]]
    gpus = sorted({c.gpu for w in workloads for c in screened[w.id]})
    has_llm = [w for w in workloads if catalog.load_model(w.model).category != "vision"]
    policies = llm_precisions if has_llm else ("any",)
    groups = []
    for g in gpus:
        for pol in policies:
            per = []
            for w in workloads:
                cs = [c for c in screened[w.id] if c.gpu == g and (
                    pol == "any" or w not in has_llm or c.precision in (pol, FALLBACK.get(pol)))]
                if not cs:
                    break
                per.append(sorted(cs, key=lambda c: (c.lb_usd is None, c.lb_usd or 0, c.n_start * c.tp))[:2])
            if len(per) < len(workloads):
                continue
            lb = _department_bound(g, per, params)
            prec = pol if pol != "any" else per[0][0].precision
            if has_llm and pol not in [c.precision for cs in per for c in cs]:
                prec = FALLBACK.get(pol, pol)
            groups.append(Group(g, prec, per, lb, sum(cs[0].n_start * cs[0].tp for cs in per)))
    return groups


def _department_bound(gpu: str, per: list[list[Candidate]], params) -> float | None:
    """Yearly-cost lower bound of a department on one accelerator type when workloads may share GPUs: at
    least the largest single workload's start, and at least the GPUs its models' memory needs."""
    acc = catalog.load_gpu(gpu)
    firsts = [cs[0] for cs in per]
    mem = sum(c.memory_gb_per_gpu * c.tp for c in firsts) * 1e9 / acc.memory_bytes
    n = max(max(c.n_lo * c.tp for c in firsts), math.ceil(mem))
    return cost_lower_bound(acc, n, firsts[0].workload, params)


def evaluate_group(kind: str, grp: Group, hours, seed, engine, max_gpus):
    """(clusters if every workload met its target, else None; the sizing attempts for 'closest')."""
    sized, attempts = [], []
    used = 0
    for cands in grp.per_workload:
        best = None
        for c in cands:
            s = size(c, hours, seed, engine, max(c.tp, max_gpus - used))
            if s is None:
                continue
            attempts.append(s)
            if s.ok:
                best = s
                break
        if best is None:
            return None, attempts
        sized.append(best)
        used += best.replicas * best.cand.tp
    if kind == "workload" or len(sized) == 1:
        return [solo_cluster(s) for s in sized], attempts
    return pack(sized, catalog.load_gpu(grp.gpu), hours, seed, engine), attempts


def assemble(kind: str, grp: Group, clusters, params, hours: float, dept: Department | None) -> tuple[dict, list]:
    """One option: fleet size, simulated latencies, utilisation, energy and costs."""
    acc = catalog.load_gpu(grp.gpu)
    count = sum(f["gpus"] for _, _, f in clusters)
    gpu_kwh = sum(f["energy_kwh"] * HOURS_PER_YEAR / f["hours"] for _, _, f in clusters)
    placed = [(p, r) for pl, rs, _ in clusters for p, r in zip(pl, rs)]
    spy = dept.annual_exams if dept is not None and dept.annual_exams else sum(
        studies_per_year(p.sized.cand.workload) for p, _ in placed)
    costs = fleet_costs(*as_physical(acc, count), gpu_kwh, spy, params)   # k MIG slices: k/7 of a GPU
    n_h = int(math.ceil(hours))
    util = np.zeros(n_h)
    for _, _, f in clusters:
        u = np.resize(np.array(f["utilisation_by_hour"][:n_h] or [0.0]), n_h)
        util += u * f["gpus"] / count
    order = {w.id: k for k, w in enumerate(c.workload for cs in grp.per_workload for c in cs[:1])}
    rows = sorted((_workload_row(p, r, cl) for cl in clusters for p, r in zip(cl[0], cl[1])),
                  key=lambda r: order.get(r["workload"], 0))
    worst = max(rows, key=lambda r: r["p95_vs_target"] or 0)
    tps = sorted({r["tp"] for r in rows})
    precs = sorted({r["precision"] for r in rows})
    single = kind == "workload"
    oid = f"{grp.gpu}-{precs[0]}-tp{tps[0]}-x{count}" if single else f"{grp.gpu}-{grp.precision}-x{count}"
    opt = {"id": oid, "gpu": grp.gpu, "count": count, "precision": precs[0] if len(precs) == 1 else grp.precision,
           "precisions": precs, "tp": max(tps), "replicas": sum(len(p.groups) for p, _ in placed),
           "p50_latency_s": worst["p50_latency_s"], "p95_latency_s": worst["p95_latency_s"],
           "p99_latency_s": worst["p99_latency_s"], "p95_ttft_s": worst["p95_ttft_s"],
           "p95_tpot_s": worst["p95_tpot_s"], "p95_vs_target": worst["p95_vs_target"],
           "meets_target": all(r["meets_target"] for r in rows), "utilisation": float(util.mean()),
           "peak_hour_utilisation": float(util.max()), "memory_gb_per_gpu": max(r["memory_gb_per_gpu"] for r in rows),
           "co_located": [r["workload"] for r in rows if r["shares_gpu_with"]], "studies_per_year": spy,
           "workloads": rows}
    opt.update(costs)
    fam = catalog.load_calibration().family(acc.family)
    # families with no published measurement use the NVIDIA-fitted fractions unscaled: say so on the option
    opt["efficiency_calibrated"] = not fam.basis.startswith("assumption")
    opt["efficiency_basis"] = f"{acc.family}: {fam.basis}"
    if single:
        opt["batching"] = rows[0]["batching"]
    relabel(opt)                     # MIG slices: gpu = the physical id, mig, slices, fractional count
    return opt, [float(x) for x in util]


def _workload_row(p: Placed, r: dict, cluster) -> dict:
    w, c, info = p.sized.cand.workload, p.sized.cand, p.info
    ratio = target_ratio(r, w.target)
    lim = {k: info[k] for k in ("engine_kind", "max_seqs", "token_budget", "max_batch", "max_wait_s") if k in info}
    shares = sorted({q.sized.cand.workload.id for q in cluster[0] if q is not p and set(q.groups) & set(p.groups)})
    gpus = len(p.groups) * replica_tp(p)
    return {"workload": w.id, "model": w.model, "gpu": c.gpu, "precision": c.precision, "tp": replica_tp(p),
            "replicas": len(p.groups), "count": gpus, "meets_target": r["meets_target"],
            "misses": r.get("misses", []), "shares_gpu_with": shares,
            "target": w.target.model_dump(exclude_none=True), "p50_latency_s": r["p50_latency_s"],
            "p95_latency_s": r["p95_latency_s"], "p99_latency_s": r["p99_latency_s"], "p95_ttft_s": r["p95_ttft_s"],
            "p95_tpot_s": r["p95_tpot_s"], "makespan_s": r["makespan_s"] if w.arrivals.kind == "batch" else None,
            "p95_vs_target": ratio, "utilisation": r["utilisation"],
            "peak_hour_utilisation": r["peak_hour_utilisation"],
            "max_queue_length": r["max_queue_length"], "memory_gb_per_gpu": info["memory_gb_per_gpu"],
            "batching": lim, "queue_length_by_minute": r["queue_length_by_minute"][: 24 * 60]}


def pareto_ids(options: list[dict]) -> list[str]:
    """Non-dominated options over (TCO per year, p95 / target, energy per year), lower is better."""
    pts = [(o["id"], o["tco_per_year_usd"], o["p95_vs_target"] or 0, o["energy_kwh_per_year"])
           for o in options if o["meets_target"] and o["tco_per_year_usd"] is not None]
    out = []
    for oid, *a in pts:
        dominated = any(all(x <= y for x, y in zip(b, a)) and any(x < y for x, y in zip(b, a)) for _, *b in pts)
        if not dominated:
            out.append(oid)
    return out

