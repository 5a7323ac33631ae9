"""Clusters of GPU groups: sized workloads placed on their own GPUs or co-located on another workload's GPUs
(a department's shared fleet), simulated together (planner.serving.run_fleet: engines on a shared GPU take
turns), and how much volume growth a set of clusters still serves.

A cluster is a tuple (placed workloads, their simulated results, the fleet summary of its GPUs).
"""
from __future__ import annotations

from dataclasses import dataclass

from planner.errors import PlannerError
from planner.service_tables import build_service
from planner.serving import Member, meets_target, run_fleet, workload_arrivals
from planner.serving_summary import FLEET_FIELDS
from planner.sizing import Sized, count_simulation
from planner.units import HOUR

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
    count_simulation()
    members = []
    for p in cluster:
        w = p.sized.cand.workload
        arr, img = workload_arrivals(w, hours, seed, scale)
        members.append(Member(p.service, arr, img, p.groups, w.calls_per_study))
    outs, fleet = run_fleet(members, hours * HOUR, seed)
    for o, p in zip(outs, cluster):
        o["meets_target"], o["misses"] = meets_target(o, p.sized.cand.workload.target)
    return outs, fleet


def solo_cluster(s: Sized) -> tuple[list[Placed], list[dict], dict]:
    """A workload on its own GPUs: the sizing simulation already is the cluster's simulation."""
    r = s.result
    fleet = {"gpus": s.replicas * s.cand.tp, **{k: r[k] for k in FLEET_FIELDS}}
    return [Placed(s, s.service, s.info, tuple(range(s.replicas)))], [r], fleet


def pack(sized: list[Sized], acc, hours: float, seed: int, engine: str) -> list[tuple]:
    """Co-locate single-replica workloads on another workload's GPUs when the memory of every engine on the
    group fits (LLMs capped at CO_LOCATED_MAX_SEQS in flight) and a shared simulation still meets every
    target: first all of them on the largest workload's GPUs, else one at a time. Batch jobs stay alone.
    Returns clusters as (placed, results, fleet)."""
    clusters = [solo_cluster(s) for s in sized]
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
    tp, g0 = replica_tp(host[0]), host[0].groups[0]
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



def replica_tp(p: Placed) -> int:
    """GPUs per replica of a placed workload (its service may have been rebuilt at its host's tp)."""
    return getattr(p.service, "gpus", p.sized.cand.tp)
