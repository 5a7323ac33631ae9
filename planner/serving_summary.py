"""Summaries of a serving simulation run (pure numpy): latency percentiles, utilisation and energy by hour,
queue length by minute, per workload (summarise) and for a whole fleet of shared GPU groups (fleet_summary).
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from planner.batching import WorkloadRun
from planner.units import HOUR, KWH

if TYPE_CHECKING:
    from planner.serving import Member

# what fleet_summary returns besides "gpus"; a single workload's summary has the same fields
FLEET_FIELDS = ("hours", "utilisation", "utilisation_by_hour", "peak_hour_utilisation", "energy_kwh",
                "energy_kwh_by_hour")


def _pct(x: np.ndarray) -> dict:
    x = x[~np.isnan(x)]
    if not len(x):
        return {"p50": None, "p95": None, "p99": None, "mean": None, "max": None}
    p50, p95, p99 = np.percentile(x, [50, 95, 99])
    return {"p50": float(p50), "p95": float(p95), "p99": float(p99), "mean": float(x.mean()), "max": float(x.max())}


def _busy_until(t: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Busy seconds in [0, t] summed over intervals: sum_{S<=t} min(E, t) - S, from sorted starts and ends."""
    s, e = np.sort(starts), np.sort(ends)
    cs, ce = np.concatenate([[0], np.cumsum(s)]), np.concatenate([[0], np.cumsum(e)])
    ns, ne = np.searchsorted(s, t, "right"), np.searchsorted(e, t, "right")
    return ce[ne] + t * (ns - ne) - cs[ns]


def _time_average(t_change, values, edges) -> np.ndarray:
    """Average of a step function (``values`` from each ``t_change`` on) over consecutive ``edges``."""
    t, v = np.asarray(t_change, dtype=float), np.asarray(values, dtype=float)
    area = np.concatenate([[0], np.cumsum(v[:-1] * np.diff(t))])
    idx = np.searchsorted(t, edges, "right") - 1
    at = area[idx] + v[idx] * (edges - t[idx])
    return np.diff(at) / np.diff(edges)


def _hour_edges(horizon_s: float, min_hours: int = 0) -> np.ndarray:
    """Hour boundaries 0, 3600, ... up to ``horizon_s`` (the last hour may be partial)."""
    n_h = max(min_hours, int(math.ceil(horizon_s / HOUR - 1e-9)))
    return np.minimum(np.arange(n_h + 1) * HOUR, horizon_s)


def _busy_and_energy(edges: np.ndarray, s: np.ndarray, e: np.ndarray, j: np.ndarray, idle_w: float,
                     span_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(busy seconds, joules) per hour of ``edges`` for busy intervals [s, e) that drew ``j`` joules each:
    an interval's energy counts in the hour of its midpoint, and idle power fills the rest of ``span_s``."""
    n_h = len(edges) - 1
    busy = np.diff(_busy_until(edges, s, e)) if len(s) else np.zeros(n_h)
    hour = np.minimum(((s + e) / 2 // HOUR).astype(int), n_h - 1)
    energy = np.bincount(hour, weights=j, minlength=n_h)[:n_h] + idle_w * np.maximum(span_s - busy, 0)
    return busy, energy


def _queue_steps(run: WorkloadRun, arrival: np.ndarray):
    """Waiting calls as a step function: +1 at each arrival and later pass, -k at each take."""
    t = np.concatenate([[0.0], arrival, run.requeue_t, run.take_t])
    d = np.concatenate([[0], np.ones(len(arrival) + len(run.requeue_t)), -np.array(run.take_k, dtype=float)])
    order = np.lexsort((d < 0, t))                 # at equal times, arrivals before takes
    return t[order], np.cumsum(d[order])


def _max_queue(q_t: np.ndarray, q_n: np.ndarray) -> int:
    """Most calls waiting for a positive time (a study taken the instant it arrives never waited)."""
    held = np.diff(np.append(q_t, np.inf)) > 1e-9
    return int(q_n[held].max()) if held.any() else 0


def summarise(run: WorkloadRun, service, replicas: int, horizon_s: float, events: int, wall_s: float,
              output_tokens: int) -> dict:
    """One workload's run as simulate() reports it: latency, TTFT and TPOT percentiles, throughput, utilisation
    and energy (overall and by hour, idle power included), queue length by minute, simulator events."""
    arrival, finish = np.array(run.arrival), np.array(run.finish)
    lat, ttft = finish - arrival, np.array(run.first_token) - arrival
    n = len(arrival)
    makespan = float(np.nanmax(finish)) if n else 0.0
    horizon = max(horizon_s, makespan if n and arrival.max() == 0 else horizon_s)
    s, e, j = (np.asarray(x, dtype=float) for x in (run.busy_s, run.busy_e, run.busy_j))
    edges = _hour_edges(horizon)
    span_h = np.diff(edges) * replicas
    busy_h, energy_h = _busy_and_energy(edges, s, e, j, service.idle_w, span_h)
    util_h = busy_h / span_h
    minutes = np.minimum(np.arange(int(math.ceil(horizon / 60)) + 1) * 60.0, horizon)
    q_t, q_n = _queue_steps(run, arrival)
    q_min = _time_average(q_t, q_n, minutes) if len(minutes) > 1 else np.zeros(0)
    lat_p, ttft_p, tpot_p = _pct(lat), _pct(ttft), _pct(np.array(run.tpot))
    energy_j = float(energy_h.sum())
    out = {
        "studies": n, "completed": run.done, "replicas": replicas,
        "hours": horizon / HOUR, "latency_s": lat_p, "ttft_s": ttft_p, "tpot_s": tpot_p,
        "p50_latency_s": lat_p["p50"], "p95_latency_s": lat_p["p95"], "p99_latency_s": lat_p["p99"],
        "p50_ttft_s": ttft_p["p50"], "p95_ttft_s": ttft_p["p95"], "p99_ttft_s": ttft_p["p99"],
        "p95_tpot_s": tpot_p["p95"], "mean_wait_s": _mean_wait(run),
        "makespan_s": makespan, "throughput_studies_per_h": n / (horizon / HOUR) if horizon else 0.0,
        "output_tokens_per_s": n * run.calls * output_tokens / horizon if horizon else 0.0,
        "utilisation": float(busy_h.sum() / span_h.sum()) if span_h.sum() else 0.0,
        "utilisation_by_hour": [float(x) for x in util_h],
        "peak_hour_utilisation": float(util_h.max()) if len(util_h) else 0.0,
        "queue_length_by_minute": [float(x) for x in q_min], "max_queue_length": _max_queue(q_t, q_n),
        "energy_kwh": energy_j / KWH, "energy_kwh_by_hour": [float(x / KWH) for x in energy_h],
        "avg_power_w": energy_j / horizon if horizon else 0.0,
        "energy_wh_per_study": energy_j / 3600 / n if n else None,
        "events": events, "wall_s": wall_s, "events_per_s": events / wall_s if wall_s > 0 else None,
    }
    return out


def _mean_wait(run: WorkloadRun) -> float | None:
    """Mean time from arrival to the start of a study's first service (the queueing-theory Wq)."""
    w = np.array(run.start) - np.array(run.arrival)
    w = w[~np.isnan(w)]
    return float(w.mean()) if len(w) else None


def fleet_summary(runs: list[WorkloadRun], members: list[Member], hosts: dict[int, list[int]],
                  horizon_s: float) -> dict:
    """Energy and GPU utilisation of the whole fleet by hour: busy energy of every iteration plus each GPU
    group's idle power while no engine on it runs (counted once per group, however many engines share it)."""
    edges = _hour_edges(horizon_s, min_hours=1)
    width = np.diff(edges)
    util, energy, gpus = np.zeros(len(width)), np.zeros(len(width)), 0
    for g, ks in hosts.items():
        svc = members[ks[0]].service
        sel = [(r.busy_s[i], r.busy_e[i], r.busy_j[i]) for k in ks for r in (runs[k],)
               for i in range(len(r.busy_g)) if r.busy_g[i] == g]
        s, e, j = (np.array(x, dtype=float) for x in zip(*sel)) if sel else (np.zeros(0),) * 3
        busy, group_energy = _busy_and_energy(edges, s, e, j, svc.idle_w, width)
        energy += group_energy
        util += busy * svc.gpus
        gpus += svc.gpus
    u = util / (width * max(gpus, 1))
    return {"gpus": gpus, "hours": horizon_s / HOUR, "utilisation": float(util.sum() / (width.sum() * max(gpus, 1))),
            "utilisation_by_hour": [float(x) for x in u], "peak_hour_utilisation": float(u.max()),
            "energy_kwh": float(energy.sum() / KWH), "energy_kwh_by_hour": [float(x / KWH) for x in energy]}

