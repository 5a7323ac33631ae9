"""Capacity planning: which accelerators, how many, at which precision, tensor-parallel degree and batching
limits serve a workload (or a department's workloads on one shared fleet) at its target, ranked by TCO.

1. Screen analytically with the vectorised core (planner.screen): one planner.predict.evaluate() per (model,
   precision) over every accelerator x batch size x tp gives memory fit, the single-request latency floor and
   the throughput of one replica at the largest batch that still meets the latency target. What does not fit,
   or whose floor already misses the target, is dropped; the rest get a starting replica count = peak arrival
   rate / throughput.
2. Simulate survivors (planner.sizing over planner.serving) in order of a yearly-cost lower bound: from the
   starting count, step up until the simulated day meets the target, then bisect down to the fewest replicas
   that still meet it. Stop once ``max_options`` configurations are found and the next lower bound exceeds the
   last of them.
3. Batching limits: for the listed options, a smaller in-flight cap (LLMs) or batch (vision) is tried with one
   replica fewer. Growth: each option is re-simulated at (1 + growth)^y times the volume, y = 1..years.
4. Rank by TCO per year; Pareto set over (TCO, p95 latency / target, energy) (planner.options).
A department's workloads share one fleet of one accelerator type (the LLM precision is one of the option's
axes): each workload is first sized on its own GPUs at its cheapest tp, then workloads that need a single
replica are co-located on another workload's GPUs when the engines' memory fits and a simulation of the shared
GPUs still meets every target (planner.fleet; engines take turns on a shared GPU).
The core does no file I/O: ids are resolved through planner.catalog's cached loaders.
"""
from __future__ import annotations

import math
import time

from planner import catalog
from planner.cost import cost_params, tco_at_electricity
from planner.errors import PlannerError, check_positive_int
from planner.fleet import (CO_LOCATED_MAX_SEQS, Placed, clusters_ok, max_volume_scale, pack,  # noqa: F401
                           simulate_cluster, solo_cluster, year_fails)
from planner.mig import (MEMORY_SLICES, MIG_ASSUMPTION, MIG_COST_ASSUMPTION, fleet_label, max_slices, physical,
                         registered, slice_accelerator)
from planner.options import Group, assemble, evaluate_group, make_groups, pareto_ids
from planner.plan_assumptions import describe_workload, model_validation, plan_assumptions
from planner.screen import (BATCHES, FALLBACK, HEADROOM, TPS, Candidate, peak_rate, screen,  # noqa: F401
                            studies_per_year)
from planner.serving import check_plannable, target_ratio
from planner.sizing import SMALLER_LIMITS, Sized, simulations_so_far, size, try_smaller_limits  # noqa: F401
from planner.units import HOUR
from planner.workload_specs import Department, Workload

# Names above that plan() does not use (BATCHES, Placed, size, ...) stay importable from planner.capacity,
# the module they were first written in.

LLM_PRECISIONS = ("bf16", "fp8", "w8a8")
VISION_PRECISIONS = ("fp16", "fp8", "w8a8")


# --------------------------------------------------------------------------------------------- inputs

def resolve(target) -> tuple[str, str, str, list[Workload], list[dict], Department | None]:
    """(kind, id, name, plannable workloads, skipped, department) from a Workload, Department, id or path."""
    obj = target
    if isinstance(target, str):
        obj = catalog.load_workload_or_department(target)
    if isinstance(obj, Workload):
        check_plannable(obj)
        return "workload", obj.id, obj.name, [obj], [], None
    if isinstance(obj, Department):
        ok = [w for w in obj.workloads if w.plannable]
        skipped = [{"workload": w.id, "reason": w.not_plannable_reason} for w in obj.workloads if not w.plannable]
        if not ok:
            raise PlannerError(f"department '{obj.id}' has no plannable workload ({skipped[0]['reason']})")
        return "department", obj.id, obj.name, ok, skipped, obj
    raise PlannerError(f"plan() needs a workload or department (object, preset id or file), "
                       f"got {type(target).__name__}")


# --------------------------------------------------------------------------------------------- plan

ELECTRICITY_GRID = (0.08, 0.13, 0.20, 0.30)      # USD/kWh: EIA state range to EU level (reference §5)
GROWTH_GRID = (0.0, 0.05, 0.10, 0.15, 0.20)
GROWTH_HORIZON = 10                               # years the growth sensitivity looks ahead
SENSITIVITY_MAX_SCALE = (1 + max(GROWTH_GRID)) ** GROWTH_HORIZON   # 6.2x: the largest volume it needs
TIME_BUDGET_S = 45.0                              # stop simulating new options after this (plan < 1 minute)
UNPRICED_MAX = 4


def _check_args(years, growth, hours, max_gpus, max_options, seed):
    years = check_positive_int("years", years)
    if years > 30:
        raise PlannerError(f"years must be at most 30, got {years}")
    for name, v, lo, hi in (("growth", growth, 0.0, 1.0), ("hours", hours, 1e-3, 24 * 31)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not lo <= v <= hi:
            raise PlannerError(f"{name} must be a number in [{lo:g}, {hi:g}], got {v!r}")
    return (years, float(growth), float(hours), check_positive_int("max_gpus", max_gpus),
            check_positive_int("max_options", max_options), check_positive_int("seed", seed, allow_zero=True))


def plan(target, gpus=None, precisions=None, years: int = 4, growth: float = 0.05,
         electricity_usd_per_kwh: float = 0.13, pue: float = 1.6, seed: int = 0, hours: float = 24,
         engine: str = "optimized", max_gpus: int = 64, max_options: int = 10, mig: bool = True,
         **cost_overrides) -> dict:
    """Ranked hardware options for a workload or a department (object, preset id or file path). JSON-ready:
    ``options`` best first (TCO per year), ``pareto``, ``recommendation`` and ``alternatives``, ``assumptions``
    ({name, value, unit, source}), ``utilisation_by_hour`` per option id, ``sensitivity``, ``validation``, and
    ``closest`` with a ``message`` when nothing meets the target. With ``mig`` (default), accelerators with MIG
    (hw_specs mig_max_slices) are also considered as k < mig_max_slices 1g slices of one GPU (planner.mig):
    such options have ``mig`` "1g", ``slices`` k and a ``count`` of k / mig_max_slices GPUs."""
    t0, sims0 = time.perf_counter(), simulations_so_far()
    years, growth, hours, max_gpus, max_options, seed = _check_args(years, growth, hours, max_gpus, max_options, seed)
    kind, tid, name, workloads, skipped, dept = resolve(target)
    params = cost_params(electricity_usd_per_kwh=electricity_usd_per_kwh, pue=pue, **cost_overrides)
    gpu_ids = list(dict.fromkeys(gpus)) if gpus else catalog.list_gpus()
    accs = [catalog.load_gpu(g) for g in gpu_ids]
    slices = [s for s in map(slice_accelerator, accs) if s is not None] if mig else []
    with registered(slices):
        return _plan(t0, sims0, kind, tid, name, workloads, skipped, dept, params, gpu_ids, accs, slices,
                     precisions, years, growth, seed, hours, engine, max_gpus, max_options)


def _plan(t0, sims0, kind, tid, name, workloads, skipped, dept, params, gpu_ids, accs, slices, precisions,
          years, growth, seed, hours, engine, max_gpus, max_options) -> dict:
    llm_prec = tuple(precisions) if precisions else LLM_PRECISIONS
    screened, rejected, n_mig_rejected = {}, [], 0
    for w in workloads:
        vision = catalog.load_model(w.model).category == "vision"
        precs = tuple(precisions) if precisions else (VISION_PRECISIONS if vision else LLM_PRECISIONS)
        screened[w.id], rej = screen(w, accs, precs, engine, params, max_gpus)
        rejected += rej
        by_cap = {}                  # MIG slices: at most mig_max_slices - 1 of one GPU (planner.mig.max_slices)
        for s in slices:
            by_cap.setdefault(min(max_gpus, max_slices(s.id)), []).append(s)
        for cap, group in by_cap.items():
            cands, rej = screen(w, group, precs, engine, params, cap)
            screened[w.id] += cands
            n_mig_rejected += len(rej)          # not offered as 'closest': a slice is never the way out
    groups = make_groups(kind, workloads, screened, llm_prec, params)
    found, attempts, sims, cut = _branch_and_bound(kind, groups, params, hours, seed, engine, max_gpus,
                                                   max_options, dept, t0)
    found = _refine(kind, found, params, hours, seed, engine, max_gpus, dept, years, growth, max_options)
    options = [o for o, _, _ in found]
    caps = {o["id"]: o.pop("_max_volume_multiple") for o in options if "_max_volume_multiple" in o}
    result = {"kind": kind, "id": tid, "name": name, "workloads": [describe_workload(w, dept) for w in workloads],
              "skipped": skipped, "gpus_considered": gpu_ids, "precisions": list(llm_prec), "years": years,
              "growth": growth, "seed": seed, "hours": hours, "engine": engine, "options": options,
              "pareto": pareto_ids(options), "utilisation_by_hour": {o["id"]: u for o, u, _ in found},
              "assumptions": plan_assumptions(params, workloads, dept, hours, seed, engine, years, growth),
              "validation": model_validation(), "feasible": bool(options)}
    if slices:
        result["mig_considered"] = sorted(physical(s.id)[0].id for s in slices)
    if any(o.get("mig") for o in options):
        result["assumptions"] += [
            {"name": "mig_1g_profile", "value": f"1/7 compute (1/mig_max_slices), "
             f"1/{MEMORY_SLICES} memory and bandwidth", "unit": "share of one GPU per slice", "source": MIG_ASSUMPTION},
            {"name": "mig_slice_cost", "value": "1/7", "unit": "share of one GPU's power and price per slice",
             "source": MIG_COST_ASSUMPTION}]
    for o in options:
        o["pareto"] = o["id"] in result["pareto"]
    result["recommendation"], result["alternatives"] = _recommend(options)
    if options:
        top = [result["recommendation"]] + result["alternatives"]
        by_id = {o["id"]: c for o, _, c in found}
        result["sensitivity"] = _sensitivity(top, [by_id[t["id"]] for t in top], hours, seed, caps)
        result["message"] = (f"{len(options)} option(s) meet {_targets(workloads)}; recommended: "
                             f"{_label(options[0])}")
    else:
        result["closest"] = _closest([s for s in attempts if physical(s.cand.gpu) is None], rejected)
        result["message"] = _impossible_message(workloads, result["closest"])
        result["sensitivity"] = {}
    result["search"] = {"screened": sum(len(v) for v in screened.values()) + len(rejected) + n_mig_rejected,
                        "survived_screen": sum(len(v) for v in screened.values()), "options_simulated": len(attempts),
                        "sizing_simulations": sims, "simulations": simulations_so_far() - sims0,
                        "stopped_by_time_budget": cut, "elapsed_s": time.perf_counter() - t0}
    return result


def _branch_and_bound(kind, groups, params, hours, seed, engine, max_gpus, max_options, dept, t0):
    """Simulate groups cheapest lower bound first; stop when max_options are found and the next bound is
    above the max_options-th TCO (or the time budget is spent)."""
    priced = sorted((g for g in groups if g.lb_usd is not None), key=lambda g: g.lb_usd)
    unpriced = sorted((g for g in groups if g.lb_usd is None), key=lambda g: g.n_gpus_guess)[:UNPRICED_MAX]
    found, attempts, sims, cut = [], [], 0, False
    for k, grp in enumerate(priced + unpriced):
        tcos = sorted(o["tco_per_year_usd"] for o, _, _ in found if o["tco_per_year_usd"] is not None)
        if k < len(priced) and len(tcos) >= max_options and grp.lb_usd > tcos[max_options - 1]:
            continue
        if time.perf_counter() - t0 > TIME_BUDGET_S and found:
            cut = True
            break
        cap = max_slices(grp.gpu)           # MIG slices: fewer than one whole GPU
        clusters, tried = evaluate_group(kind, grp, hours, seed, engine,
                                         max_gpus if cap is None else min(cap, max_gpus))
        attempts += tried
        sims += sum(s.sims for s in tried)
        if clusters is not None:
            opt, util = assemble(kind, grp, clusters, params, hours, dept)
            found.append((opt, util, clusters))
    return found, attempts, sims, cut


def _rank_key(item):
    o = item[0]
    return (o["tco_per_year_usd"] is None, o["tco_per_year_usd"] or 0,
            o["count"] * (o["cloud_usd_per_gpu_hour"] or 1e9))


def _refine(kind, found, params, hours, seed, engine, max_gpus, dept, years, growth, max_options):
    """For the listed options: smaller batching limits at one replica fewer, then the growth year."""
    found = sorted(found, key=_rank_key)[:max_options]
    out = []
    for k, (opt, util, clusters) in enumerate(found):
        if kind == "workload":
            s = clusters[0][0][0].sized
            better = try_smaller_limits(s, hours, seed, engine, max_gpus)
            if better is not s:
                clusters = [solo_cluster(better)]
                grp = Group(better.cand.gpu, opt["precision"], [[better.cand]], None, 0)   # a MIG slice id too
                opt, util = assemble(kind, grp, clusters, params, hours, dept)
        if k < 3:                 # the likely top 3 get the full volume bisection (reused by _sensitivity)
            cap = max_volume_scale(clusters, hours, seed, hi=SENSITIVITY_MAX_SCALE)
            opt["_max_volume_multiple"] = cap
            fy = next((y for y in range(1, years + 1) if (1 + growth) ** y > cap), None) if growth > 0 else None
        else:
            fy = year_fails(clusters, years, growth, hours, seed)
        opt["fails_in_year"] = fy
        opt["meets_target_through_year"] = years if fy is None else fy - 1
        out.append((opt, util, clusters))
    return sorted(out, key=_rank_key)


def _recommend(options):
    """The best option and two alternatives, preferring other accelerator types for a real choice."""
    if not options:
        return None, []
    rec, alts = options[0], []
    for o in options[1:]:
        if o["gpu"] != rec["gpu"] and o["gpu"] not in {a["gpu"] for a in alts}:
            alts.append(o)
        if len(alts) == 2:
            break
    for o in options[1:]:
        if len(alts) == 2:
            break
        if o not in alts:
            alts.append(o)
    return rec, alts


def _sensitivity(top, cluster_lists, hours, seed, caps: dict) -> dict:
    """TCO against electricity price, and the year each top option stops meeting the target against growth."""
    elec = [{"option": o["id"], "usd_per_kwh": p, "tco_per_year_usd": tco_at_electricity(o, p)}
            for o in top for p in ELECTRICITY_GRID]
    growth_rows = []
    for o, clusters in zip(top, cluster_lists):
        hi = SENSITIVITY_MAX_SCALE
        cap = caps.get(o["id"])
        if cap is None:
            cap = max_volume_scale(clusters, hours, seed, hi=hi)
        for g in GROWTH_GRID:
            y = next((y for y in range(1, GROWTH_HORIZON + 1) if (1 + g) ** y > cap), None)
            growth_rows.append({"option": o["id"], "growth": g, "max_volume_multiple": cap,
                                "max_volume_multiple_is_search_limit": cap >= hi, "fails_in_year": y})
    return {"electricity": elec, "growth": growth_rows, "growth_horizon_years": GROWTH_HORIZON}


def _closest(attempts: list[Sized], rejected: list[dict]) -> list[dict]:
    """The five configurations nearest to the target (simulated misses, then screen rejections), for the
    message of a plan that found no option."""
    rows = []
    for s in attempts:
        if s.ok:
            continue
        ratio = target_ratio(s.result, s.cand.workload.target)
        rows.append({"workload": s.cand.workload.id, "gpu": s.cand.gpu, "precision": s.cand.precision,
                     "tp": s.cand.tp, "count": s.replicas * s.cand.tp, "p95_latency_s": s.result["p95_latency_s"],
                     "p95_ttft_s": s.result["p95_ttft_s"], "p95_vs_target": ratio, "floor_s": s.cand.floor_s,
                     "achieves": "; ".join(s.result["misses"]) or "misses the target"})
    for r in rejected:
        if r.get("floor_s") is None or not ("floor" in r["reason"] or "max_gpus" in r["reason"]):
            continue
        why = f"one study alone takes {r['floor_s']:.3g} s" if "floor" in r["reason"] else r["reason"]
        rows.append({"workload": r["workload"], "gpu": r["gpu"], "precision": r["precision"], "tp": r["tp"],
                     "count": r.get("count", r["tp"]), "p95_latency_s": None, "p95_ttft_s": None, "p95_vs_target": None,
                     "floor_s": r["floor_s"], "achieves": why})
    def closeness(r):          # simulated misses by how far; too-slow floors fastest first; too-big fleets smallest
        big = "max_gpus" in r["achieves"]
        return (r["p95_vs_target"] is None, big, r["p95_vs_target"] or 0, r["count"] if big else 0, r["floor_s"] or 0)
    rows.sort(key=closeness)
    return rows[:5]


def _impossible_message(workloads, closest) -> str:
    head = f"no configuration meets {_targets(workloads)}"
    if not closest:
        return head + " (nothing fits in memory on the accelerators considered; try other GPUs or a lower precision)"
    best = "; ".join(f"{c['count']} x {c['gpu']} {c['precision']} tp{c['tp']}: {c['achieves']}" for c in closest[:3])
    return f"{head}. Closest: {best}"


def _targets(workloads) -> str:
    return "; ".join(f"{w.id}: {w.target.describe()}" for w in workloads)


def _label(o: dict) -> str:
    tco = f"${o['tco_per_year_usd']:,.0f}/yr" if o["tco_per_year_usd"] is not None else "no purchase price"
    span = [w["makespan_s"] for w in o["workloads"] if w.get("makespan_s") is not None]
    ttft_only = all("p95_latency_s" not in w["target"] and "p95_ttft_s" in w["target"] for w in o["workloads"])
    name, p95 = ("p95 TTFT", o["p95_ttft_s"]) if ttft_only else ("p95", o["p95_latency_s"])
    speed = (f"done in {max(span) / HOUR:.3g} h" if len(span) == len(o["workloads"]) else
             f"{name} {p95:.3g} s" if p95 is not None else "no studies in the simulated period")
    return f"{fleet_label(o)} ({o['precision']}, tp {o['tp']}), {speed}, {tco}"

