"""Sizing by simulation: the fewest replicas of a screened candidate whose simulated period meets the target
(step up from the analytic start, then bisect down), and one replica fewer with smaller batching limits.
Also counts the simulated periods, so that a plan can report how many it ran.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from planner.errors import PlannerError
from planner.screen import HEADROOM, Candidate
from planner.service_tables import build_service
from planner.serving import meets_target, simulate_service

SMALLER_LIMITS = {"continuous-batching": (32, 8), "static-batching": (8, 1)}


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


_simulated = [0]        # simulated periods since import (plan() reports its own share)


def count_simulation() -> None:
    _simulated[0] += 1


def simulations_so_far() -> int:
    return _simulated[0]


def _run(w, svc, replicas, hours, seed, scale=1.0) -> dict:
    count_simulation()
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

