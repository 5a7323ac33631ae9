"""Serving simulation: a day (or more) of study arrivals through a fleet of model replicas, with simpy.

Replicas pull from one FIFO queue per workload (an ideal least-loaded router), so c replicas form the M/M/c-like
system that tests check against Erlang C. Several workloads may share GPU groups (run_fleet); their engines
then take turns on the shared GPU. The parts:
- planner.service_tables: one replica's per-iteration service times and energies from the core model
  (planner.predict.evaluate) at the actual batch composition, precomputed over every batch size;
- planner.batching: the continuous-batching (LLM) and static-batching (vision) engines as simpy processes;
- planner.serving_summary: latency percentiles, utilisation, energy and queue series of a run;
- this module: arrivals, the fleet run, targets, and the public simulate().
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from planner.batching import SHARED_SLICE_S, GpuLock, WorkloadRun, llm_replica, static_replica  # noqa: F401
from planner.errors import PlannerError, check_positive_int
from planner.service_tables import (DEFAULT_MAX_SEQS, DEFAULT_MAX_WAIT_S, DEFAULT_TOKEN_BUDGET,  # noqa: F401
                                    DEFAULT_VISION_MAX_BATCH, LlmService, StaticService, build_service,
                                    prompt_lengths)
from planner.serving_summary import fleet_summary, summarise
from planner.units import HOUR

# SHARED_SLICE_S, the DEFAULT_* limits, StaticService, build_service and prompt_lengths are not used here but
# stay importable from planner.serving, where callers have always found them.


# --------------------------------------------------------------------------------------------- arrivals

def poisson_arrivals(rates_per_hour: np.ndarray, hours: float, rng: np.random.Generator) -> np.ndarray:
    """Non-homogeneous Poisson arrivals, rate constant within each hour; ``rates_per_hour`` repeats daily."""
    n_h = int(math.ceil(hours))
    rates = np.resize(np.asarray(rates_per_hour, dtype=float), n_h)
    width = np.minimum(1.0, hours - np.arange(n_h))
    counts = rng.poisson(rates * width)
    starts = np.repeat(np.arange(n_h) * HOUR, counts)
    return np.sort(starts + rng.random(counts.sum()) * np.repeat(width * HOUR, counts))


def study_images(n: int, mean: float | None, rng: np.random.Generator) -> np.ndarray:
    """Images per study: floor or ceil of the mean, so that the average is the mean (1.66 -> 1 or 2)."""
    if mean is None:
        return np.zeros(n, dtype=int)
    lo = math.floor(mean)
    return (lo + (rng.random(n) < mean - lo)).astype(int)


def workload_arrivals(w, hours: float, seed: int, volume_scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Seeded study arrival times and image counts of workload ``w`` (the same draw for the same inputs, so
    configurations are compared on the same day: common random numbers)."""
    rng = np.random.default_rng(seed)
    a = w.arrivals
    if a.kind == "batch":
        arrival = np.zeros(max(1, int(round(a.batch_size * volume_scale))))
    else:
        arrival = poisson_arrivals(a.hourly_rates(volume_scale), hours, rng)
    return arrival, study_images(len(arrival), w.images_per_study, rng)


# --------------------------------------------------------------------------------------------- fleet run

@dataclass(frozen=True)
class Member:
    """A workload's part of a fleet: its service, its studies, and the GPU group of each of its replicas."""
    service: object
    arrival: np.ndarray
    images: np.ndarray
    groups: tuple[int, ...]
    calls: int = 1


def run_fleet(members: list[Member], horizon_s: float, seed: int = 0) -> tuple[list[dict], dict]:
    """Simulate several workloads on a fleet of GPU groups; engines of different workloads placed on the same
    group share it (one iteration at a time, FIFO). Returns (one summary per member, the fleet's energy and
    utilisation with each group's idle power counted once). Pure: numbers in, numbers out."""
    try:
        import simpy
    except ImportError:
        raise PlannerError("the serving simulation needs simpy: pip install 'radplan[sim]'") from None
    env = simpy.Environment()
    runs, rng = [], np.random.default_rng(seed + 1)
    hosts: dict[int, list[int]] = {}
    for k, m in enumerate(members):
        if m.calls > 1 and not isinstance(m.service, LlmService):
            raise PlannerError("multi-pass studies (calls_per_study > 1) are for LLM workloads")
        runs.append(WorkloadRun(env, np.asarray(m.arrival, dtype=float), np.asarray(m.images, dtype=int), m.calls))
        for g in m.groups:
            hosts.setdefault(g, []).append(k)
    gpus = {g: GpuLock(env) for g, ks in hosts.items() if len(ks) > 1}
    for k, m in enumerate(members):
        for g in m.groups:
            if isinstance(m.service, LlmService):
                peers = [runs[j] for j in hosts[g] if j != k]
                env.process(llm_replica(env, runs[k], m.service, g, gpus.get(g), peers))
            else:
                env.process(static_replica(env, runs[k], m.service, rng, g, gpus.get(g)))
    wall = time.perf_counter()
    events = _run_counting(env, runs)
    wall = time.perf_counter() - wall
    outs = [summarise(r, m.service, len(m.groups), horizon_s, events, wall, getattr(m.service, "output_tokens", 0))
            for r, m in zip(runs, members)]
    return outs, fleet_summary(runs, members, hosts, max(o["hours"] for o in outs) * HOUR if outs else horizon_s)


def run_simulation(service, replicas: int, arrival: np.ndarray, images: np.ndarray, horizon_s: float,
                   calls_per_study: int = 1, seed: int = 0) -> dict:
    """Simulate ``replicas`` copies of ``service`` (each on its own GPUs) serving studies that arrive at
    ``arrival`` (seconds, sorted) until every study is done. ``horizon_s`` is the period the utilisation,
    energy and queue series cover."""
    m = Member(service, arrival, images, tuple(range(replicas)), calls_per_study)
    return run_fleet([m], horizon_s, seed)[0][0]


def _run_counting(env, runs: list[WorkloadRun]) -> int:
    """Step the event loop until every study is done; returns the number of events processed."""
    events, total = 0, sum(r.n for r in runs)
    while True:
        try:
            env.step()
        except Exception as e:            # simpy.core.EmptySchedule: nothing left to do
            if type(e).__name__ == "EmptySchedule":
                return events
            raise
        events += 1
        if total and sum(r.done for r in runs) == total:
            return events


# --------------------------------------------------------------------------------------------- the public call

def check_plannable(w) -> None:
    """A workload marked not yet plannable (its model is not in the catalog) cannot be simulated or planned."""
    if not w.plannable:
        raise PlannerError(f"workload '{w.id}' is not yet plannable: {w.not_plannable_reason}")


def _target_checks(result: dict, target) -> list[tuple[str, float, float, float]]:
    """(metric, achieved, limit, achieved / limit) for each metric that the target sets and the result has."""
    t, rows = target, []
    for name, got, want in (("p95 latency", result["p95_latency_s"], t.p95_latency_s),
                            ("p95 TTFT", result["p95_ttft_s"], t.p95_ttft_s)):
        if want is not None and got is not None:
            rows.append((name, got, want, got / want))
    if t.min_tokens_per_s_per_user is not None and result["p95_tpot_s"] is not None:
        got = result["p95_tpot_s"]
        rows.append(("p95 TPOT", got, 1.0 / t.min_tokens_per_s_per_user, got * t.min_tokens_per_s_per_user))
    if t.deadline_h is not None and result["makespan_s"] is not None:
        got, want = result["makespan_s"], t.deadline_h * HOUR
        rows.append(("finishing time", got, want, got / want))
    return rows


def meets_target(result: dict, target) -> tuple[bool, list[str]]:
    """Whether a simulation result meets a workload's target, and why not."""
    why = [f"{name} {got:.3g} s > {want:.3g} s" for name, got, want, _ in _target_checks(result, target)
           if got > want * (1 + 1e-9)]
    return not why, why


def target_ratio(result: dict, target) -> float | None:
    """Worst of achieved / target over the target's metrics (<= 1 meets)."""
    ratios = [ratio for *_, ratio in _target_checks(result, target)]
    return max(ratios) if ratios else None


def simulate(workload, gpu: str, count: int, precision: str, hours: float = 24, seed: int = 0, tp: int = 1,
             max_batch: int | None = None, token_budget: int | None = None, max_wait_s: float | None = None,
             engine: str = "optimized", volume_scale: float = 1.0) -> dict:
    """Simulate ``hours`` of a workload (a Workload or a preset id) on ``count`` GPUs (count/tp replicas).
    Returns p50/p95/p99 latency_s and ttft_s, throughput, utilisation (overall and by hour), queue length by
    minute, energy, whether the target is met, and the batching limits used. Seeded: same input, same output."""
    from planner.catalog import load_workload
    w = load_workload(workload) if isinstance(workload, str) else workload
    check_plannable(w)
    count, tp = check_positive_int("count", count), check_positive_int("tp", tp)
    if count % tp:
        raise PlannerError(f"count {count} is not a multiple of tp {tp} (each replica uses tp GPUs)")
    if not (isinstance(hours, (int, float)) and math.isfinite(hours) and 0 < hours <= 24 * 31):
        raise PlannerError(f"hours must be a number in (0, 744], got {hours!r}")
    if not (isinstance(volume_scale, (int, float)) and math.isfinite(volume_scale) and volume_scale > 0):
        raise PlannerError(f"volume_scale must be a positive number, got {volume_scale!r}")
    svc, info = build_service(w, gpu, precision, tp, max_batch, token_budget, max_wait_s, engine)
    res = simulate_service(w, svc, count // tp, hours, seed, volume_scale)
    ok, why = meets_target(res, w.target)
    res.update(workload=w.id, model=w.model, gpu=gpu, count=count, precision=precision, tp=tp, seed=seed,
               volume_scale=volume_scale, target=w.target.model_dump(exclude_none=True), meets_target=ok,
               misses=why, **info)
    return res


def simulate_service(w, svc, replicas: int, hours: float, seed: int, volume_scale: float = 1.0) -> dict:
    """Arrivals for workload ``w`` (seeded) through ``replicas`` copies of a built service."""
    arrival, images = workload_arrivals(w, hours, seed, volume_scale)
    return run_simulation(svc, replicas, arrival, images, hours * HOUR, w.calls_per_study, seed)
