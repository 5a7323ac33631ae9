"""Capacity planning: which accelerators, how many, at which precision, tensor-parallel degree and batching
limits serve a workload (or a department's workloads on one shared fleet) at its target, ranked by TCO.

1. Screen analytically with the vectorised core: one planner.predict.evaluate() per (model, precision) over
   every accelerator x batch size x tp gives memory fit, the single-request latency floor and the throughput of
   one replica at the largest batch that still meets the latency target. What does not fit, or whose floor
   already misses the target, is dropped; the rest get a starting replica count = peak arrival rate / throughput.
2. Simulate survivors (planner.serving) in order of a yearly-cost lower bound: from the starting count, step up
   until the simulated day meets the target, then bisect down to the fewest replicas that still meet it. Stop
   once ``max_options`` configurations are found and the next lower bound exceeds the last of them.
3. Batching limits: for the listed options, a smaller in-flight cap (LLMs) or batch (vision) is tried with one
   replica fewer. Growth: each option is re-simulated at (1 + growth)^y times the volume, y = 1..years.
4. Rank by TCO per year; Pareto set over (TCO, p95 latency / target, energy).
A department's workloads share one fleet of one accelerator type (the LLM precision is one of the option's
axes): each workload is first sized on its own GPUs at its cheapest tp, then workloads that need a single
replica are co-located on another workload's GPUs when the engines' memory fits and a simulation of the shared
GPUs still meets every target (planner.serving.run_fleet; engines take turns on a shared GPU).
The core does no file I/O: ids are resolved through planner.catalog's cached loaders.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from planner import catalog
from planner.cost import HOURS_PER_YEAR, assumptions, cost_params, fleet_costs, tco_at_electricity
from planner.errors import PlannerError, check_positive_int
from planner.serving import build_service, meets_target, prompt_lengths, simulate_service
from planner.units import HOUR
from planner.workload_specs import Department, Workload

LLM_PRECISIONS = ("bf16", "fp8", "w8a8")
VISION_PRECISIONS = ("fp16", "fp8", "w8a8")
FALLBACK = {"bf16": "fp16", "fp16": "bf16"}    # a GPU without one 16-bit type runs the other
TPS = (1, 2, 4, 8)
BATCHES = np.array([1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256], dtype=float)
HEADROOM = 0.8          # the analytic start uses batches whose service time is <= 80 % of the target
SMALLER_LIMITS = {"continuous-batching": (32, 8), "static-batching": (8, 1)}


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


# --------------------------------------------------------------------------------------------- inputs

def resolve(target) -> tuple[str, str, str, list[Workload], list[dict], Department | None]:
    """(kind, id, name, plannable workloads, skipped, department) from a Workload, Department, id or path."""
    obj = target
    if isinstance(target, str):
        obj = catalog.load_workload_or_department(target)
    if isinstance(obj, Workload):
        if not obj.plannable:
            raise PlannerError(f"workload '{obj.id}' is not yet plannable: {obj.not_plannable_reason}")
        return "workload", obj.id, obj.name, [obj], [], None
    if isinstance(obj, Department):
        ok = [w for w in obj.workloads if w.plannable]
        skipped = [{"workload": w.id, "reason": w.not_plannable_reason} for w in obj.workloads if not w.plannable]
        if not ok:
            raise PlannerError(f"department '{obj.id}' has no plannable workload ({skipped[0]['reason']})")
        return "department", obj.id, obj.name, ok, skipped, obj
    raise PlannerError(f"plan() needs a workload or department (object, preset id or file), "
                       f"got {type(target).__name__}")


def peak_rate(w: Workload) -> float:
    """Studies per second the fleet must sustain: the busiest hour, or a batch over its deadline."""
    a = w.arrivals
    if a.kind == "batch":
        return a.batch_size / (w.target.deadline_h * HOUR)
    return w.peak_per_hour() / HOUR


def studies_per_year(w: Workload) -> float:
    """Batch jobs count as one run per simulated day (a nightly job); see the assumptions list."""
    return w.studies_per_day() * 365


# --------------------------------------------------------------------------------------------- analytic screen

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


def screen(w: Workload, accs, precisions, engine: str, params, max_gpus: int):
    """Vectorised screen of accelerator x precision x tp for one workload: (candidates, rejected)."""
    from planner.api import _engine, model_plan
    from planner.predict import evaluate, gpu_table
    from planner.quant import load_precision
    cal, eng = catalog.load_calibration(), _engine(engine)
    spec = catalog.load_model(w.model)
    lam, t = peak_rate(w), w.target
    cands, rejected = [], []
    for pid, mask in _precision_masks(accs, precisions):
        p = load_precision(pid)
        plan = model_plan(w.model, p.id)
        vision_only = plan.decode is None
        table = gpu_table(accs, p, cal)
        vtable = gpu_table(accs, plan.vision_precision, cal) if plan.vision_precision is not None else None
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
        ok = r["supported"] & r["fits"] & mask[:, None, None]
        if vtable is not None:
            ok = ok & vtable.supported[:, None, None]
        maxb = r["max_batch"][:, :1, :]
        valid = ok & (b <= np.maximum(maxb, 1)) & (maxb >= 1)
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
                why = _reject_reason(valid[g, 0, k], allowed[g, :, k].any(), floor[g, k], t, acc, n_tp, r, g, k)
                if why:
                    if mask[g] and why != "tp":
                        rejected.append({"workload": w.id, "gpu": acc.id, "precision": p.id, "tp": int(n_tp),
                                         "reason": why, "floor_s": _f(floor[g, k])})
                    continue
                n_lo = max(1, math.ceil(lam / thr_max[g, k]))
                n_start = max(n_lo, math.ceil(lam / thr_ok[g, k]))
                if n_start * n_tp > max_gpus:
                    rejected.append({"workload": w.id, "gpu": acc.id, "precision": p.id, "tp": int(n_tp),
                                     "count": int(n_start * n_tp),
                                     "reason": f"needs about {n_start * n_tp} GPUs, more than max_gpus {max_gpus}",
                                     "floor_s": _f(floor[g, k])})
                    continue
                lb = _lower_bound(acc, n_start * n_tp, w, params)
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


def _lower_bound(acc, count: int, w: Workload, params) -> float | None:
    idle_kwh = acc.power.idle_w * count * HOURS_PER_YEAR / 1000
    return fleet_costs(acc, count, idle_kwh, studies_per_year(w), params)["tco_per_year_usd"]


def _f(x) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


# --------------------------------------------------------------------------------------------- simulation

@dataclass
class Sized:
    """A candidate at the fewest replicas that met the target in simulation (or the best it achieved)."""
    cand: Candidate
    replicas: int
    result: dict
    service: object
    info: dict
    ok: bool
    sims: int


_SIMULATED = [0]        # simulated periods since import (plan() reports its own share)


def _run(w, svc, replicas, hours, seed, scale=1.0) -> dict:
    _SIMULATED[0] += 1
    res = simulate_service(w, svc, replicas, hours, seed, scale)
    res["meets_target"], res["misses"] = meets_target(res, w.target)
    return res


def size(c: Candidate, hours: float, seed: int, engine: str, max_gpus: int, limits: dict | None = None,
         start: int | None = None) -> Sized | None:
    """Fewest replicas of candidate ``c`` whose simulated period meets the target: step up from the analytic
    start (jumping by the peak-hour overload), then bisect down. None if the service cannot be built."""
    try:
        svc, info = build_service(c.workload, c.gpu, c.precision, c.tp, engine=engine, **(limits or {}))
    except PlannerError:
        return None
    w, top = c.workload, max(1, max_gpus // c.tp)
    sims, n, fail_n = 0, min(start or c.n_start, top), None
    while True:
        res = _run(w, svc, n, hours, seed)
        sims += 1
        if res["meets_target"]:
            break
        fail_n = n
        if n >= top:
            return Sized(c, n, res, svc, info, False, sims)
        over = res["peak_hour_utilisation"]
        n = min(top, max(n + 1, math.ceil(n * over / HEADROOM) if over > 0.9 else n + 1))
    ok_n, ok_res = n, res
    lo = fail_n if fail_n is not None else (c.n_lo - 1 if start is None else n - 1)
    while ok_n - lo > 1:
        mid = (lo + ok_n) // 2
        r = _run(w, svc, mid, hours, seed)
        sims += 1
        if r["meets_target"]:
            ok_n, ok_res = mid, r
        else:
            lo = mid
    return Sized(c, ok_n, ok_res, svc, info, True, sims)


def try_smaller_limits(s: Sized, hours, seed, engine, max_gpus) -> Sized:
    """One replica fewer with a smaller in-flight cap or batch, when that still meets the target."""
    if s.replicas <= 1:
        return s
    kind = s.info["engine_kind"]
    current = s.info.get("max_seqs", s.info.get("max_batch"))
    for cap in SMALLER_LIMITS[kind]:
        if cap >= current:
            continue
        limits = {"max_batch": cap} if kind == "continuous-batching" else {"max_batch": cap, "max_wait_s": 0.0}
        try:
            svc, info = build_service(s.cand.workload, s.cand.gpu, s.cand.precision, s.cand.tp, engine=engine,
                                      **limits)
        except PlannerError:
            continue
        res = _run(s.cand.workload, svc, s.replicas - 1, hours, seed)
        if res["meets_target"]:
            return Sized(s.cand, s.replicas - 1, res, svc, info, True, s.sims + 1)
    return s


# --------------------------------------------------------------------------------------------- shared fleet

CO_LOCATED_MAX_SEQS = 32      # assumption: LLM engines that share a GPU keep at most 32 requests in flight


@dataclass
class Placed:
    """A workload's replicas in a cluster of GPU groups (engines on the same group share it)."""
    sized: Sized
    service: object
    info: dict
    groups: tuple[int, ...]


def simulate_cluster(cluster: list[Placed], hours: float, seed: int, scale: float = 1.0):
    """(per-workload results with meets_target, fleet summary) of GPU groups simulated together."""
    from planner.serving import Member, run_fleet, workload_arrivals
    _SIMULATED[0] += 1
    members = []
    for p in cluster:
        w = p.sized.cand.workload
        arr, img = workload_arrivals(w, hours, seed, scale)
        members.append(Member(p.service, arr, img, p.groups, w.calls_per_study))
    outs, fleet = run_fleet(members, hours * HOUR, seed)
    for o, p in zip(outs, cluster):
        o["meets_target"], o["misses"] = meets_target(o, p.sized.cand.workload.target)
    return outs, fleet


def _solo(s: Sized) -> tuple[list[Placed], list[dict], dict]:
    """A workload on its own GPUs: the sizing simulation already is the cluster's simulation."""
    r = s.result
    fleet = {"gpus": s.replicas * s.cand.tp, "hours": r["hours"], "utilisation": r["utilisation"],
             "utilisation_by_hour": r["utilisation_by_hour"], "peak_hour_utilisation": r["peak_hour_utilisation"],
             "energy_kwh": r["energy_kwh"], "energy_kwh_by_hour": r["energy_kwh_by_hour"]}
    return [Placed(s, s.service, s.info, tuple(range(s.replicas)))], [r], fleet


def pack(sized: list[Sized], acc, hours: float, seed: int, engine: str) -> list[tuple]:
    """Co-locate single-replica workloads on another workload's GPUs when the memory of every engine on the
    group fits (LLMs capped at CO_LOCATED_MAX_SEQS in flight) and a shared simulation still meets every
    target: first all of them on the largest workload's GPUs, else one at a time. Batch jobs stay alone.
    Returns clusters as (placed, results, fleet)."""
    clusters = [_solo(s) for s in sized]
    cap_gb = acc.memory_bytes / 1e9
    rate = [c for c in clusters if c[0][0].sized.cand.workload.arrivals.kind != "batch"]
    if len(rate) < 2:
        return clusters
    host = max(rate, key=lambda c: c[2]["gpus"])
    guests = sorted((c for c in rate if c is not host and c[0][0].sized.replicas == 1),
                    key=lambda c: c[0][0].info["memory_gb_at_max_batch"])
    together = _try_cluster(host[0], [g[0][0] for g in guests], acc.id, engine, cap_gb, hours, seed)
    if together is not None:
        return [c for c in clusters if c is not host and not any(c is g for g in guests)] + [together]
    for guest in guests:
        hosts = sorted((c for c in clusters if c is not guest and
                        c[0][0].sized.cand.workload.arrivals.kind != "batch"), key=lambda c: -c[2]["gpus"])
        for h in hosts:
            trial = _try_cluster(h[0], [guest[0][0]], acc.id, engine, cap_gb, hours, seed)
            if trial is not None:
                clusters = [c for c in clusters if c is not guest and c is not h] + [trial]
                break
    return clusters


def _try_cluster(host, guests, gpu, engine, cap_gb, hours, seed):
    """The host cluster plus ``guests`` on its first GPU group, if memory fits and every target is met."""
    if not guests:
        return None
    placed = _co_locate(host, guests, gpu, engine, cap_gb)
    if placed is None:
        return None
    outs, fleet = simulate_cluster(placed, hours, seed)
    return (placed, outs, fleet) if all(o["meets_target"] for o in outs) else None


def _co_locate(host: list[Placed], guests: list[Placed], gpu: str, engine: str, cap_gb: float):
    """The host's engines plus the guests on the host's first GPU group, services rebuilt at the host's tp
    with co-location limits; None if their memory does not fit."""
    tp, g0 = _tp_of(host[0]), host[0].groups[0]
    out = []
    for p in host + guests:
        c = p.sized.cand
        limits = {"max_batch": min(p.info.get("max_seqs", CO_LOCATED_MAX_SEQS), CO_LOCATED_MAX_SEQS)} \
            if p.info["engine_kind"] == "continuous-batching" else {"max_batch": p.info["max_batch"]}
        try:
            svc, info = build_service(c.workload, c.gpu, c.precision, tp, engine=engine, **limits)
        except PlannerError:
            return None
        out.append(Placed(p.sized, svc, info, (g0,) if any(p is g for g in guests) else p.groups))
    on_g0 = [p for p in out if g0 in p.groups]
    if sum(p.info["memory_gb_at_max_batch"] for p in on_g0) > cap_gb:
        return None
    return out


def clusters_ok(clusters, hours: float, seed: int, scale: float) -> bool:
    return all(o["meets_target"] for cl in clusters for o in simulate_cluster(cl[0], hours, seed, scale)[0])


def year_fails(clusters, years: int, growth: float, hours: float, seed: int) -> int | None:
    """First year y in 1..years in which (1 + growth)^y times today's volume misses a target; None if none.
    Batch jobs are left out (their volume is a backlog, not a rate)."""
    clusters = _rate_clusters(clusters)
    if growth <= 0 or not clusters:
        return None

    def ok(y):
        return clusters_ok(clusters, hours, seed, (1 + growth) ** y)
    if ok(years):                # the last year first: most options either pass it or fail early
        return None
    lo, hi = 0, years            # bisect the first failing year (volume only grows, so failures persist)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if ok(mid) else (lo, mid)
    return hi


def max_volume_scale(clusters, hours: float, seed: int, hi: float = 4.0, steps: int = 4) -> float:
    """Largest volume multiple (bisection in [1, hi]) at which every workload still meets its target."""
    clusters = _rate_clusters(clusters)
    if not clusters or clusters_ok(clusters, hours, seed, hi):
        return hi
    lo = 1.0
    for _ in range(steps):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if clusters_ok(clusters, hours, seed, mid) else (lo, mid)
    return lo


def _rate_clusters(clusters):
    """Clusters without batch jobs (pack() never co-locates a batch job, so it is alone in its cluster)."""
    return [c for c in clusters if all(p.sized.cand.workload.arrivals.kind != "batch" for p in c[0])]


# --------------------------------------------------------------------------------------------- options

@dataclass
class Group:
    """One option to simulate: an accelerator type with, per workload, candidates in cost order."""
    gpu: str
    precision: str
    per_workload: list[list[Candidate]]
    lb_usd: float | None
    n_gpus_guess: int


def make_groups(kind: str, workloads: list[Workload], screened: dict, llm_precisions, params) -> list[Group]:
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
    return _lower_bound(acc, n, firsts[0].workload, params)


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
        return [_solo(s) for s in sized], attempts
    return pack(sized, catalog.load_gpu(grp.gpu), hours, seed, engine), attempts


def assemble(kind: str, grp: Group, clusters, params, hours: float, dept: Department | None) -> tuple[dict, list]:
    """One option: fleet size, simulated latencies, utilisation, energy and costs."""
    acc = catalog.load_gpu(grp.gpu)
    count = sum(f["gpus"] for _, _, f in clusters)
    gpu_kwh = sum(f["energy_kwh"] * HOURS_PER_YEAR / f["hours"] for _, _, f in clusters)
    placed = [(p, r) for pl, rs, _ in clusters for p, r in zip(pl, rs)]
    spy = dept.annual_exams if dept is not None and dept.annual_exams else sum(
        studies_per_year(p.sized.cand.workload) for p, _ in placed)
    costs = fleet_costs(acc, count, gpu_kwh, spy, params)
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
    if single:
        opt["batching"] = rows[0]["batching"]
    return opt, [float(x) for x in util]


def _workload_row(p: Placed, r: dict, cluster) -> dict:
    w, c, info = p.sized.cand.workload, p.sized.cand, p.info
    ratio = _target_ratio(r, w)
    lim = {k: info[k] for k in ("engine_kind", "max_seqs", "token_budget", "max_batch", "max_wait_s") if k in info}
    shares = sorted({q.sized.cand.workload.id for q in cluster[0] if q is not p and set(q.groups) & set(p.groups)})
    gpus = len(p.groups) * _tp_of(p)
    return {"workload": w.id, "model": w.model, "gpu": c.gpu, "precision": c.precision, "tp": _tp_of(p),
            "replicas": len(p.groups), "count": gpus, "meets_target": r["meets_target"],
            "misses": r.get("misses", []), "shares_gpu_with": shares,
            "target": w.target.model_dump(exclude_none=True), "p50_latency_s": r["p50_latency_s"],
            "p95_latency_s": r["p95_latency_s"], "p99_latency_s": r["p99_latency_s"], "p95_ttft_s": r["p95_ttft_s"],
            "p95_tpot_s": r["p95_tpot_s"], "makespan_s": r["makespan_s"] if w.arrivals.kind == "batch" else None,
            "p95_vs_target": ratio, "utilisation": r["utilisation"],
            "peak_hour_utilisation": r["peak_hour_utilisation"],
            "max_queue_length": r["max_queue_length"], "memory_gb_per_gpu": info["memory_gb_per_gpu"],
            "batching": lim, "queue_length_by_minute": r["queue_length_by_minute"][: 24 * 60]}


def _tp_of(p: Placed) -> int:
    return getattr(p.service, "gpus", p.sized.cand.tp)


def _target_ratio(r: dict, w: Workload) -> float | None:
    """Worst of achieved / target over the workload's target metrics (<= 1 meets)."""
    t, ratios = w.target, []
    for key, want in (("p95_latency_s", t.p95_latency_s), ("p95_ttft_s", t.p95_ttft_s)):
        if want is not None and r.get(key) is not None:
            ratios.append(r[key] / want)
    if t.min_tokens_per_s_per_user is not None and r.get("p95_tpot_s") is not None:
        ratios.append(r["p95_tpot_s"] * t.min_tokens_per_s_per_user)
    if t.deadline_h is not None:
        ratios.append(r["makespan_s"] / (t.deadline_h * HOUR))
    return max(ratios) if ratios else None


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
         engine: str = "optimized", max_gpus: int = 64, max_options: int = 10, **cost_overrides) -> dict:
    """Ranked hardware options for a workload or a department (object, preset id or file path). JSON-ready:
    ``options`` best first (TCO per year), ``pareto``, ``recommendation`` and ``alternatives``, ``assumptions``
    ({name, value, unit, source}), ``utilisation_by_hour`` per option id, ``sensitivity``, ``validation``, and
    ``closest`` with a ``message`` when nothing meets the target."""
    t0, sims0 = time.perf_counter(), _SIMULATED[0]
    years, growth, hours, max_gpus, max_options, seed = _check_args(years, growth, hours, max_gpus, max_options, seed)
    kind, tid, name, workloads, skipped, dept = resolve(target)
    params = cost_params(electricity_usd_per_kwh=electricity_usd_per_kwh, pue=pue, **cost_overrides)
    gpu_ids = list(dict.fromkeys(gpus)) if gpus else catalog.list_gpus()
    accs = [catalog.load_gpu(g) for g in gpu_ids]
    llm_prec = tuple(precisions) if precisions else LLM_PRECISIONS
    screened, rejected = {}, []
    for w in workloads:
        vision = catalog.load_model(w.model).category == "vision"
        precs = tuple(precisions) if precisions else (VISION_PRECISIONS if vision else LLM_PRECISIONS)
        screened[w.id], rej = screen(w, accs, precs, engine, params, max_gpus)
        rejected += rej
    groups = make_groups(kind, workloads, screened, llm_prec, params)
    found, attempts, sims, cut = _branch_and_bound(kind, groups, params, hours, seed, engine, max_gpus,
                                                   max_options, dept, t0)
    found = _refine(kind, found, params, hours, seed, engine, max_gpus, dept, years, growth, max_options)
    options = [o for o, _, _ in found]
    caps = {o["id"]: o.pop("_max_volume_multiple") for o in options if "_max_volume_multiple" in o}
    result = {"kind": kind, "id": tid, "name": name, "workloads": [_describe(w, dept) for w in workloads],
              "skipped": skipped, "gpus_considered": gpu_ids, "precisions": list(llm_prec), "years": years,
              "growth": growth, "seed": seed, "hours": hours, "engine": engine, "options": options,
              "pareto": pareto_ids(options), "utilisation_by_hour": {o["id"]: u for o, u, _ in found},
              "assumptions": _assumptions(params, workloads, dept, hours, seed, engine, years, growth),
              "validation": _validation(), "feasible": bool(options)}
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
        result["closest"] = _closest(attempts, rejected)
        result["message"] = _impossible_message(workloads, result["closest"])
        result["sensitivity"] = {}
    result["search"] = {"screened": sum(len(v) for v in screened.values()) + len(rejected),
                        "survived_screen": sum(len(v) for v in screened.values()), "options_simulated": len(attempts),
                        "sizing_simulations": sims, "simulations": _SIMULATED[0] - sims0, "stopped_by_time_budget": cut,
                        "elapsed_s": time.perf_counter() - t0}
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
        clusters, tried = evaluate_group(kind, grp, hours, seed, engine, max_gpus)
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
                clusters = [_solo(better)]
                grp = Group(opt["gpu"], opt["precision"], [[better.cand]], None, 0)
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
    rows = []
    for s in attempts:
        if s.ok:
            continue
        ratio = _target_ratio(s.result, s.cand.workload)
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
    return f"{o['count']} x {o['gpu']} ({o['precision']}, tp {o['tp']}), {speed}, {tco}"


def _describe(w: Workload, dept) -> dict:
    scale = 1.0
    if dept is not None:
        scale = dept.scales[[x.id for x in dept.workloads].index(w.id)]
    return {"id": w.id, "name": w.name, "model": w.model, "studies_per_day": w.studies_per_day(),
            "peak_per_hour": w.peak_per_hour(), "arrivals": w.arrivals.kind, "target": w.target.describe(),
            "input_tokens": w.input_tokens, "output_tokens": w.output_tokens, "images_per_study": w.images_per_study,
            "calls_per_study": w.calls_per_study, "volume_scale": scale}


def _assumptions(params, workloads, dept, hours, seed, engine, years, growth) -> list[dict]:
    from planner import serving
    rows = assumptions(params)
    sim = [("simulated_hours", hours, "h", "input: one simulated day repeats all year"),
           ("seed", seed, "", "input: arrivals and image counts are seeded"),
           ("engine", engine, "", "planner --engine profile: optimized = TensorRT-LLM/vLLM-class"),
           ("planning_years", years, "years", "input"),
           ("growth", growth, "per year", "input; reference §4d default 5 %/yr [A from S 34, 47]"),
           ("llm_max_seqs", serving.DEFAULT_MAX_SEQS, "requests", "vLLM EngineArgs default max_num_seqs"),
           ("llm_token_budget", serving.DEFAULT_TOKEN_BUDGET, "prompt tokens per prefill iteration",
            "assumption: vLLM max_num_batched_tokens scale"),
           ("vision_max_batch", serving.DEFAULT_VISION_MAX_BATCH, "images", "assumption"),
           ("vision_max_wait_s", serving.DEFAULT_MAX_WAIT_S, "s", "assumption: Triton dynamic batcher delay"),
           ("batch_jobs", "daily", "", "assumption: a batch workload is costed as one run per simulated day"),
           ("co_location", "single-replica workloads", "",
            "assumption: in a department, a workload that needs one replica may share another workload's GPUs "
            "when the engines' memory fits and a shared simulation meets every target (no MIG slices)"),
           ("co_located_llm_max_seqs", CO_LOCATED_MAX_SEQS, "requests", "assumption: in-flight cap of an LLM "
            "engine that shares its GPU, so that the KV caches of co-located engines fit"),
           ("shared_gpu_time_slice_s", serving.SHARED_SLICE_S, "s", "assumption: engines sharing a GPU take turns "
            "at about this granularity while both have work (GPU time-slicing between processes)")]
    rows += [{"name": n, "value": v, "unit": u, "source": s} for n, v, u, s in sim]
    if dept is not None and dept.annual_exams:
        rows.append({"name": f"{dept.id}.annual_exams", "value": dept.annual_exams, "unit": "exams/yr",
                     "source": dept.sources.get("annual_exams", "input")})
    for w in workloads:
        scale = _describe(w, dept)["volume_scale"]
        for path, value, unit in _workload_figures(w):
            src = next((w.sources[p] for p in _prefixes(path) if p in w.sources), "input")
            if scale != 1 and path in ("arrivals.daily_volume", "arrivals.batch_size"):
                src = f"{src}; scaled x{scale:.3g} for this department (annual_exams / reference_annual_exams)"
            rows.append({"name": f"{w.id}.{path}", "value": value, "unit": unit, "source": src})
    return rows


def _workload_figures(w: Workload):
    yield "model", w.model, "catalog id"
    for k, unit in (("input_tokens", "tokens"), ("output_tokens", "tokens"), ("images_per_study", "images"),
                    ("reference_annual_exams", "exams/yr")):
        if getattr(w, k) is not None:
            yield k, getattr(w, k), unit
    if w.calls_per_study != 1:
        yield "calls_per_study", w.calls_per_study, "calls"
    a = w.arrivals
    if a.kind == "poisson":
        yield "arrivals.daily_volume", round(a.daily_volume, 2), "studies/day"
        yield "arrivals.diurnal", a.diurnal.kind, f"peak {w.peak_per_hour():.1f} studies/h"
    else:
        yield "arrivals.batch_size", a.batch_size, "studies"
    for k, v in w.target.model_dump(exclude_none=True).items():
        yield f"target.{k}", v, k.rsplit("_", 1)[-1] if k.endswith("_s") or k.endswith("_h") else ""


def _prefixes(path: str):
    parts = path.split(".")
    return [".".join(parts[:i]) for i in range(len(parts), 0, -1)]


def _validation() -> dict:
    cal = catalog.load_calibration()
    return {"fit_mdape_pct": cal.fit_mdape_pct, "fitted_on": cal.fitted_on, "fitted_by": cal.fitted_by,
            "basis": "in-sample: median absolute percentage error of the roofline predictions against the "
                     "published measurements in data/reference/published_dev.csv, the same rows the efficiency "
                     "factors were fitted to (data/calibration/efficiency.yaml); out-of-sample error is likely "
                     "larger. The queueing simulator is checked separately against M/M/1, M/M/c (Erlang C) and "
                     "M/D/1 closed forms in tests/test_serving.py."}
