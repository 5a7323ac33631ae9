"""Serving simulation: a day (or more) of study arrivals through a fleet of model replicas, with simpy.

Two engines, one per model kind:
- LLMs and vision-language pipelines: continuous batching (Yu et al., Orca, OSDI 2022; vLLM's scheduler). At
  each iteration boundary a replica admits waiting requests, up to ``max_seqs`` in flight (memory for their full
  KV cache reserved up front, TensorRT-LLM's "guaranteed no evict" policy) and ``token_budget`` prompt tokens per
  prefill iteration; it runs that prefill (with the vision encoder of the admitted studies' images) first, as
  vLLM's default scheduler does, and otherwise runs decode steps for every request in flight.
- Vision models: static batches of up to ``max_batch`` images, sent when full or when the oldest request has
  waited ``max_wait_s`` (Triton's dynamic batcher).
Replicas pull from one FIFO queue (an ideal least-loaded router), so c replicas form the M/M/c-like system that
tests check against Erlang C.

Per-iteration service times and energies come from the core model (planner.predict.evaluate) at the actual
batch composition: prefill for k requests, vision for n images, and a decode step for B requests at their mean
context. The decode step is linear in the context (attention reads C tokens of KV per sequence), so between two
events (an arrival or a completion) the engine advances whole runs of steps in closed form:
sum_{j<n} (a + b (C + j)) = n (a + b C) + b n (n - 1) / 2. Every step still costs its own time; only the number
of simulation events shrinks, so a day of the busiest preset takes well under a second.
"""
from __future__ import annotations

import bisect
import math
import time
from collections import deque
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np

from planner.errors import PlannerError, check_positive_int
from planner.units import HOUR, KWH

DEFAULT_MAX_SEQS = 256          # vLLM EngineArgs max_num_seqs default
DEFAULT_TOKEN_BUDGET = 8192     # assumption: prompt tokens per prefill iteration (vLLM max_num_batched_tokens scale)
DEFAULT_VISION_MAX_BATCH = 32   # assumption: images per static batch of a vision model
DEFAULT_MAX_WAIT_S = 0.02       # assumption: dynamic-batcher queue delay (Triton max_queue_delay)
SHARED_SLICE_S = 0.1            # assumption: engines sharing a GPU take turns at about this granularity


@dataclass(frozen=True)
class LlmService:
    """One replica of an LLM or pipeline, as tables indexed by batch size (seconds and joules, whole replica)."""
    max_seqs: int                  # requests in flight
    max_prefill: int               # requests per prefill iteration (token budget / prompt, at least 1)
    prompt_tokens: int             # context per sequence after prefill (text + image tokens)
    output_tokens: int
    prefill_s: np.ndarray          # [k] prefill of k requests
    prefill_j: np.ndarray
    vision_s: np.ndarray | None    # [n] vision encoder (+ projector) over n images
    vision_j: np.ndarray | None
    step_s: np.ndarray             # [B, 2]: decode step = step_s[B, 0] + step_s[B, 1] * mean context
    step_j: np.ndarray
    idle_w: float                  # idle power of the replica's GPUs
    gpus: int = 1                  # GPUs per replica (tp)


@dataclass(frozen=True)
class StaticService:
    """One replica of a vision model with static batching; ``sampler(n, rng)`` draws random service times
    instead of the table (queueing-theory tests)."""
    max_batch: int
    max_wait_s: float
    service_s: np.ndarray          # [n] one batch of n images
    service_j: np.ndarray
    idle_w: float
    sampler: Callable | None = None
    gpus: int = 1


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


# --------------------------------------------------------------------------------------------- simulation state

class _Run:
    """Mutable state of one workload in a simulation run; lives only inside run_fleet.

    Arrivals are generated before the run, so the queue of fresh studies is the slice of the arrival list
    between ``ptr`` (next not yet served) and the arrivals up to now; engines read the next arrival time
    instead of waiting for an arrival event. Later passes of multi-pass studies queue in ``requeue``. Per-study
    records are Python lists (scalar access in the event loop is much faster than on numpy arrays)."""

    def __init__(self, env, arrival: np.ndarray, images: np.ndarray, calls: int):
        n = len(arrival)
        nan = [math.nan] * n
        self.env, self.calls, self.n = env, calls, n
        self.arrival, self.images = arrival.tolist(), images.tolist()
        self.ptr = 0
        self.requeue: deque = deque()               # (time queued, study) of later passes
        self.calls_left = [calls] * n
        self.first_token, self.finish, self.tpot = list(nan), list(nan), list(nan)
        self.call_first, self.start = list(nan), list(nan)
        self.done = 0
        self.busy_s, self.busy_e, self.busy_j, self.busy_g = [], [], [], []
        self.take_t, self.take_k, self.requeue_t = [], [], []
        self.wake = env.event()                     # triggered when a later pass queues

    def arrived(self) -> int:
        """Index one past the last study that has arrived by now."""
        return bisect.bisect_right(self.arrival, self.env.now, lo=self.ptr)

    def waiting(self) -> int:
        return self.arrived() - self.ptr + len(self.requeue)

    def next_arrival(self) -> float:
        j = self.arrived()
        return self.arrival[j] if j < self.n else math.inf

    def take(self, k: int) -> list[int]:
        """Up to k waiting calls in the order they queued (fresh arrivals and later passes merged)."""
        now, start, rq = self.env.now, self.start, self.requeue
        j = self.arrived()
        ids = []
        while len(ids) < k:
            fresh = self.ptr < j
            if rq and (not fresh or rq[0][0] <= self.arrival[self.ptr]):
                ids.append(rq.popleft()[1])
            elif fresh:
                ids.append(self.ptr)
                self.ptr += 1
            else:
                break
        for i in ids:
            if start[i] != start[i]:                # NaN: the study's first service starts now
                start[i] = now
        self.take_t.append(now)
        self.take_k.append(len(ids))
        return ids

    def busy(self, start: float, end: float, joules: float, group: int) -> None:
        self.busy_s.append(start)
        self.busy_e.append(end)
        self.busy_j.append(joules)
        self.busy_g.append(group)

    def first_tokens(self, ids, now: float) -> None:
        first = self.first_token
        for i in ids:
            self.call_first[i] = now
            if first[i] != first[i]:
                first[i] = now

    def calls_done(self, ids, now: float, output_tokens: int) -> None:
        again = False
        for i in ids:
            if output_tokens > 1:                   # time per output token; the slowest call of the study
                t = (now - self.call_first[i]) / (output_tokens - 1)
                if not t <= self.tpot[i]:
                    self.tpot[i] = t
            self.calls_left[i] -= 1
            if self.calls_left[i]:                  # the next pass of a multi-pass check queues again
                self.requeue.append((now, i))
                self.requeue_t.append(now)
                again = True
            else:
                self.finish[i] = now
                self.done += 1
        if again and not self.wake.triggered:
            self.wake.succeed()
            self.wake = self.env.event()

    def idle_wait(self):
        """What an idle replica waits for: the next arrival, or a later pass queuing (multi-pass only)."""
        nxt = self.next_arrival()
        if nxt == math.inf:
            return self.wake
        t = self.env.timeout(nxt - self.env.now)
        return t | self.wake if self.calls > 1 else t


# --------------------------------------------------------------------------------------------- engines

def _steps_within(elapsed: float, a: float, g: float) -> int:
    """Largest m with m*a + g*m*(m-1)/2 <= elapsed (decode steps of growing cost a, a+g, a+2g, ...)."""
    def cost(m):
        return m * a + g * m * (m - 1) / 2
    if g <= 0:
        m = int(elapsed / a) if a > 0 else 0
    else:
        h = a - g / 2
        m = int((-h + math.sqrt(h * h + 2 * g * elapsed)) / g)
    while cost(m + 1) <= elapsed:
        m += 1
    while m > 0 and cost(m) > elapsed:
        m -= 1
    return m


class _GpuLock:
    """A GPU group shared by several engines: FIFO, one iteration at a time. Taking a free lock costs no
    simulation event (cheaper than a simpy Resource, which schedules one per request)."""

    def __init__(self, env):
        self.env, self.held, self.waiters = env, False, deque()

    def acquire(self):
        """None if taken now, else an event that fires when the lock passes to this engine."""
        if not self.held:
            self.held = True
            return None
        ev = self.env.event()
        self.waiters.append(ev)
        return ev

    def release(self) -> None:
        if self.waiters:
            self.waiters.popleft().succeed()      # hand over directly: the lock stays held
        else:
            self.held = False


def _llm_replica(env, run: _Run, svc: LlmService, group: int, gpu=None, peers=()):
    """One continuous-batching engine. ``gpu``: a simpy Resource when the GPU group is shared with other
    engines; the engine then holds it for one iteration (or a decode slice of SHARED_SLICE_S) at a time."""
    cohorts = []          # [requests, decode steps left, context per sequence, ids]; a cohort finishes together
    while True:
        n_run = sum(c[0] for c in cohorts)
        if not cohorts and not run.waiting():
            yield run.idle_wait()
            continue
        if gpu is not None:
            ev = gpu.acquire()
            if ev is not None:
                yield ev
        waiting = run.waiting() if n_run < svc.max_seqs else 0
        if waiting:
            k = min(waiting, svc.max_seqs - n_run, svc.max_prefill)
            ids = run.take(k)
            t, e = svc.prefill_s[k], svc.prefill_j[k]
            if svc.vision_s is not None:
                n_img = sum(run.images[i] for i in ids)
                t, e = t + svc.vision_s[n_img], e + svc.vision_j[n_img]
            start = env.now
            yield env.timeout(t)
            run.busy(start, env.now, e, group)
            run.first_tokens(ids, env.now)
            if svc.output_tokens > 1:
                cohorts.append([k, svc.output_tokens - 1, svc.prompt_tokens + 1.0, ids])
            else:
                run.calls_done(ids, env.now, svc.output_tokens)
        else:
            cohorts = yield from _decode_chunk(env, run, svc, cohorts, n_run, group, gpu, peers)
        if gpu is not None:
            gpu.release()


def _decode_chunk(env, run: _Run, svc: LlmService, cohorts: list, n_run: int, group: int, gpu, peers):
    """Decode steps until the next completion or the step boundary after the next arrival; on a shared GPU
    also until a co-located engine may want the GPU (a time slice while one waits). Returns the cohorts
    still decoding."""
    n = min(c[1] for c in cohorts)
    cbar = sum(c[0] * c[2] for c in cohorts) / n_run
    a = svc.step_s[n_run, 0] + svc.step_s[n_run, 1] * cbar     # first step; each later one adds g
    g = svc.step_s[n_run, 1]
    if n_run < svc.max_seqs:          # the next arrival joins at the first step boundary after it
        nxt = run.next_arrival()
        if nxt < math.inf:
            n = min(n, _steps_within(nxt - env.now, a, g) + 1)
    if gpu is not None:
        if gpu.waiters or any(p.waiting() for p in peers):
            n = min(n, max(1, _steps_within(SHARED_SLICE_S, a, g)))
        else:
            nxt = min(p.next_arrival() for p in peers)
            if nxt < math.inf:
                n = min(n, _steps_within(nxt - env.now, a, g) + 1)
    start = env.now
    yield env.timeout(n * a + g * n * (n - 1) / 2)
    ja = svc.step_j[n_run, 0] + svc.step_j[n_run, 1] * cbar
    run.busy(start, env.now, n * ja + svc.step_j[n_run, 1] * n * (n - 1) / 2, group)
    for c in cohorts:
        c[1] -= n
        c[2] += n
    for c in cohorts:
        if c[1] == 0:
            run.calls_done(c[3], env.now, svc.output_tokens)
    return [c for c in cohorts if c[1] > 0]


def _next_batch(run: _Run, svc: StaticService) -> tuple[int, int, bool]:
    """(one past the last study of the next batch, its images, whether the batch is full)."""
    j = run.arrived()
    n_img, last = 0, run.ptr
    while last < j:                                  # a study's images are not split over batches
        m = max(run.images[last], 1)
        if last > run.ptr and n_img + m > svc.max_batch:
            break
        n_img += m
        last += 1
    return last, n_img, n_img >= svc.max_batch or last < j


def _static_replica(env, run: _Run, svc: StaticService, rng, group: int, gpu=None):
    """One static-batching engine (a vision model): a batch goes when full or when its oldest study has
    waited max_wait_s."""
    while True:
        if run.arrived() == run.ptr:
            yield run.idle_wait()
            continue
        last, n_img, full = _next_batch(run, svc)
        deadline = run.arrival[run.ptr] + svc.max_wait_s
        if not full and env.now < deadline:
            yield env.timeout(min(deadline, run.next_arrival()) - env.now)
            continue
        if gpu is not None:
            ev = gpu.acquire()
            if ev is not None:
                yield ev
            if run.arrived() == run.ptr:            # another engine of this workload took them meanwhile
                gpu.release()
                continue
            last, n_img, _ = _next_batch(run, svc)
        ids = run.take(last - run.ptr)
        n_tab = min(n_img, len(svc.service_s) - 1)
        t = svc.sampler(n_img, rng) if svc.sampler else svc.service_s[n_tab] * n_img / n_tab
        start = env.now
        yield env.timeout(t)
        run.busy(start, env.now, svc.service_j[n_tab] * n_img / n_tab, group)
        run.first_tokens(ids, env.now)
        run.calls_done(ids, env.now, 1)
        if gpu is not None:
            gpu.release()


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
        runs.append(_Run(env, np.asarray(m.arrival, dtype=float), np.asarray(m.images, dtype=int), m.calls))
        for g in m.groups:
            hosts.setdefault(g, []).append(k)
    gpus = {g: _GpuLock(env) for g, ks in hosts.items() if len(ks) > 1}
    for k, m in enumerate(members):
        for g in m.groups:
            if isinstance(m.service, LlmService):
                peers = [runs[j] for j in hosts[g] if j != k]
                env.process(_llm_replica(env, runs[k], m.service, g, gpus.get(g), peers))
            else:
                env.process(_static_replica(env, runs[k], m.service, rng, g, gpus.get(g)))
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


def _run_counting(env, runs: list[_Run]) -> int:
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


# --------------------------------------------------------------------------------------------- summary

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


def _queue_steps(run: _Run, arrival: np.ndarray):
    """Waiting calls as a step function: +1 at each arrival and later pass, -k at each take."""
    t = np.concatenate([[0.0], arrival, run.requeue_t, run.take_t])
    d = np.concatenate([[0], np.ones(len(arrival) + len(run.requeue_t)), -np.array(run.take_k, dtype=float)])
    order = np.lexsort((d < 0, t))                 # at equal times, arrivals before takes
    return t[order], np.cumsum(d[order])


def _max_queue(q_t: np.ndarray, q_n: np.ndarray) -> int:
    """Most calls waiting for a positive time (a study taken the instant it arrives never waited)."""
    held = np.diff(np.append(q_t, np.inf)) > 1e-9
    return int(q_n[held].max()) if held.any() else 0


def summarise(run: _Run, service, replicas: int, horizon_s: float, events: int, wall_s: float,
              output_tokens: int) -> dict:
    arrival, finish = np.array(run.arrival), np.array(run.finish)
    lat, ttft = finish - arrival, np.array(run.first_token) - arrival
    n = len(arrival)
    makespan = float(np.nanmax(finish)) if n else 0.0
    horizon = max(horizon_s, makespan if n and arrival.max() == 0 else horizon_s)
    s, e, j = (np.asarray(x, dtype=float) for x in (run.busy_s, run.busy_e, run.busy_j))
    n_h = int(math.ceil(horizon / HOUR - 1e-9))
    edges = np.minimum(np.arange(n_h + 1) * HOUR, horizon)
    busy_h = np.diff(_busy_until(edges, s, e)) if len(s) else np.zeros(n_h)
    span_h = np.diff(edges) * replicas
    util_h = busy_h / span_h
    mid_hour = np.minimum(((s + e) / 2 // HOUR).astype(int), n_h - 1) if len(s) else np.zeros(0, dtype=int)
    energy_h = np.bincount(mid_hour, weights=j, minlength=n_h) + service.idle_w * np.maximum(span_h - busy_h, 0)
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


def _mean_wait(run: _Run) -> float | None:
    """Mean time from arrival to the start of a study's first service (the queueing-theory Wq)."""
    w = np.array(run.start) - np.array(run.arrival)
    w = w[~np.isnan(w)]
    return float(w.mean()) if len(w) else None


def fleet_summary(runs: list[_Run], members: list[Member], hosts: dict[int, list[int]], horizon_s: float) -> dict:
    """Energy and GPU utilisation of the whole fleet by hour: busy energy of every iteration plus each GPU
    group's idle power while no engine on it runs (counted once per group, however many engines share it)."""
    n_h = max(1, int(math.ceil(horizon_s / HOUR - 1e-9)))
    edges = np.minimum(np.arange(n_h + 1) * HOUR, horizon_s)
    width = np.diff(edges)
    util, energy, gpus = np.zeros(n_h), np.zeros(n_h), 0
    for g, ks in hosts.items():
        svc = members[ks[0]].service
        sel = [(r.busy_s[i], r.busy_e[i], r.busy_j[i]) for k in ks for r in (runs[k],)
               for i in range(len(r.busy_g)) if r.busy_g[i] == g]
        s, e, j = (np.array(x, dtype=float) for x in zip(*sel)) if sel else (np.zeros(0),) * 3
        busy = np.diff(_busy_until(edges, s, e)) if len(s) else np.zeros(n_h)
        hour = np.minimum(((s + e) / 2 // HOUR).astype(int), n_h - 1)
        energy += np.bincount(hour, weights=j, minlength=n_h)[:n_h] + svc.idle_w * np.maximum(width - busy, 0)
        util += busy * svc.gpus
        gpus += svc.gpus
    u = util / (width * max(gpus, 1))
    return {"gpus": gpus, "hours": horizon_s / HOUR, "utilisation": float(util.sum() / (width.sum() * max(gpus, 1))),
            "utilisation_by_hour": [float(x) for x in u], "peak_hour_utilisation": float(u.max()),
            "energy_kwh": float(energy.sum() / KWH), "energy_kwh_by_hour": [float(x / KWH) for x in energy]}


# --------------------------------------------------------------------------------------------- the public call

def meets_target(result: dict, target) -> tuple[bool, list[str]]:
    """Whether a simulation result meets a workload's target, and why not."""
    why = []
    checks = [("p95_latency_s", result["p95_latency_s"], target.p95_latency_s, "p95 latency"),
              ("p95_ttft_s", result["p95_ttft_s"], target.p95_ttft_s, "p95 TTFT")]
    if target.min_tokens_per_s_per_user is not None:
        checks.append(("p95_tpot_s", result["p95_tpot_s"], 1.0 / target.min_tokens_per_s_per_user, "p95 TPOT"))
    if target.deadline_h is not None:
        checks.append(("makespan_s", result["makespan_s"], target.deadline_h * HOUR, "finishing time"))
    for _, got, want, name in checks:
        if want is not None and got is not None and got > want * (1 + 1e-9):
            why.append(f"{name} {got:.3g} s > {want:.3g} s")
    return not why, why


def simulate(workload, gpu: str, count: int, precision: str, hours: float = 24, seed: int = 0, tp: int = 1,
             max_batch: int | None = None, token_budget: int | None = None, max_wait_s: float | None = None,
             engine: str = "optimized", volume_scale: float = 1.0) -> dict:
    """Simulate ``hours`` of a workload (a Workload or a preset id) on ``count`` GPUs (count/tp replicas).
    Returns p50/p95/p99 latency_s and ttft_s, throughput, utilisation (overall and by hour), queue length by
    minute, energy, whether the target is met, and the batching limits used. Seeded: same input, same output."""
    from planner.catalog import load_workload
    w = load_workload(workload) if isinstance(workload, str) else workload
    if not w.plannable:
        raise PlannerError(f"workload '{w.id}' is not yet plannable: {w.not_plannable_reason}")
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


def simulate_service(w, svc, replicas: int, hours: float, seed: int, volume_scale: float = 1.0) -> dict:
    """Arrivals for workload ``w`` (seeded) through ``replicas`` copies of a built service."""
    arrival, images = workload_arrivals(w, hours, seed, volume_scale)
    return run_simulation(svc, replicas, arrival, images, hours * HOUR, w.calls_per_study, seed)


# --------------------------------------------------------------------------------------------- service tables

def _limit(name: str, value, default):
    return default if value is None else check_positive_int(name, value)


def build_service(w, gpu: str, precision: str, tp: int = 1, max_batch: int | None = None,
                  token_budget: int | None = None, max_wait_s: float | None = None, engine: str = "optimized"):
    """One replica's service tables for workload ``w`` from the core model, evaluated once over every batch
    size the engine can form (planner.predict.evaluate is vectorised). Returns (service, info)."""
    from planner import catalog
    from planner.api import _engine, model_plan
    from planner.parallel import check_parallel
    from planner.predict import evaluate, gpu_table
    from planner.quant import check_supported, load_precision
    acc = catalog.load_gpu(gpu)
    p = load_precision(precision)
    check_supported(acc, p)
    check_parallel(acc, tp, 1)
    eng, cal = _engine(engine), catalog.load_calibration()
    plan = model_plan(w.model, p.id)
    if plan.vision_precision is not None:
        check_supported(acc, plan.vision_precision)
    table = gpu_table([acc], p, cal)
    vtable = gpu_table([acc], plan.vision_precision, cal) if plan.vision_precision is not None else None
    idle = acc.power.idle_w * tp

    def ev(pl, b, i, o):
        with np.errstate(all="ignore"):
            return {k: np.asarray(v, dtype=float) for k, v in evaluate(pl, table, vtable, 0, b, i, o, tp, 1, eng,
                                                                       cal).items()}

    if plan.decode is None:
        return _vision_service(w, plan, acc, precision, tp, ev, idle, max_batch, max_wait_s)
    prompt, i_eff, study_img = prompt_lengths(w, plan, catalog.load_model(w.model))
    o = w.output_tokens
    full = ev(plan, 1, i_eff, o)
    _check_fits(full, w, acc, precision, tp)
    max_seqs = min(_limit("max_batch", max_batch, DEFAULT_MAX_SEQS), int(full["max_batch"]))
    if max_seqs < 1:
        raise PlannerError(f"{w.model} at {precision} on {tp} x {gpu}: not even one request of {prompt + o} "
                           f"tokens fits next to the weights; raise tp or quantize")
    budget = _limit("token_budget", token_budget, DEFAULT_TOKEN_BUDGET)
    max_prefill = max(1, min(max_seqs, budget // prompt))
    text = replace(plan, vision=None)
    pre = ev(text, np.arange(1, max_prefill + 1), i_eff, 1)
    step_s, step_j = _decode_tables(ev, text, max_seqs, i_eff, o)
    vis_s = vis_j = None
    if plan.vision is not None:
        vis = replace(plan, prefill=None, decode=None, decode_static=None, decode_ctx=None)
        n = np.arange(1, max_prefill * math.ceil(w.images_per_study) + 1)
        rv = ev(vis, n / plan.images_per_request, 0, 0)
        vis_s, vis_j = np.concatenate([[0.0], rv["latency_s"]]), np.concatenate([[0.0], rv["energy_j"]])
    svc = LlmService(max_seqs, max_prefill, prompt, o, np.concatenate([[0.0], pre["ttft_s"]]),
                     np.concatenate([[0.0], pre["energy_j"]]), vis_s, vis_j, step_s, step_j, idle, tp)
    info = {"engine_kind": "continuous-batching", "max_seqs": max_seqs, "token_budget": budget,
            "max_prefill_requests": max_prefill, "prompt_tokens": prompt, "image_tokens": study_img,
            "output_tokens": o, "beams": plan.beams, "memory_gb_per_gpu": float(full["memory_gb_per_gpu"]),
            "memory_max_seqs": int(full["max_batch"]), "single_request_latency_s": float(full["e2e_s"]),
            "memory_gb_at_max_batch": float(ev(plan, max_seqs, i_eff, o)["memory_gb_per_gpu"]), "engine": engine}
    return svc, info


def prompt_lengths(w, plan, spec) -> tuple[int, int, int]:
    """(prompt tokens per call incl. the study's image tokens, the text length evaluate() needs to reach that
    prompt with the model's own image count, image tokens). R2GenGPT averages its views, so its 49 tokens
    do not grow with the images; other pipelines add tokens per image."""
    study_img = 0
    if plan.category == "pipeline":
        a = spec.arch
        study_img = a.image_tokens_per_image * (1 if a.average_views else max(1, round(w.images_per_study)))
    prompt = w.input_tokens + study_img
    return prompt, prompt - plan.image_tokens, study_img


def _decode_tables(ev, text_plan, max_seqs: int, i_eff: float, o: int):
    """Decode-step time and energy for B = 1..max_seqs requests as a + b * (mean context): evaluate() at the
    first and the last step's context; a step at context C is evaluated as a 1-step decode after C - 1 tokens."""
    B = np.arange(1, max_seqs + 1)
    c1, c2 = 1.0, float(max(o - 1, 1))          # offsets of the first and last decode step's context
    rows = []
    for c in (c1, c2):
        two, one = ev(text_plan, B, i_eff + c - 1, 2), ev(text_plan, B, i_eff + c - 1, 1)
        rows.append((two["tpot_s"], two["energy_j"] - one["energy_j"]))
    ctx1, ctx2 = i_eff + text_plan.image_tokens + c1, i_eff + text_plan.image_tokens + c2
    out = []
    for k in (0, 1):
        y1, y2 = rows[0][k], rows[1][k]
        slope = (y2 - y1) / (ctx2 - ctx1) if ctx2 > ctx1 else np.zeros_like(y1)
        tab = np.zeros((max_seqs + 1, 2))
        tab[1:, 0], tab[1:, 1] = y1 - slope * ctx1, slope
        out.append(tab)
    return out


def _vision_service(w, plan, acc, precision, tp, ev, idle, max_batch, max_wait_s):
    one = ev(plan, 1, 0, 0)
    _check_fits(one, w, acc, precision, tp)
    cap = min(_limit("max_batch", max_batch, DEFAULT_VISION_MAX_BATCH), max(1, int(one["max_batch"])))
    wait = DEFAULT_MAX_WAIT_S if max_wait_s is None else max_wait_s
    if not (isinstance(wait, (int, float)) and math.isfinite(wait) and wait >= 0):
        raise PlannerError(f"max_wait_s must be a non-negative number of seconds, got {max_wait_s!r}")
    r = ev(plan, np.arange(1, cap + 1), 0, 0)
    svc = StaticService(cap, float(wait), np.concatenate([[0.0], r["latency_s"]]),
                        np.concatenate([[0.0], r["energy_j"]]), idle, gpus=tp)
    info = {"engine_kind": "static-batching", "max_batch": cap, "max_wait_s": float(wait),
            "memory_gb_per_gpu": float(one["memory_gb_per_gpu"]), "single_request_latency_s":
            float(one["latency_s"] * math.ceil(w.images_per_study)),
            "memory_gb_at_max_batch": float(ev(plan, cap, 0, 0)["memory_gb_per_gpu"])}
    return svc, info


def _check_fits(r: dict, w, acc, precision: str, tp: int) -> None:
    if not bool(r["supported"]):
        raise PlannerError(f"{precision} on {acc.id} with tp {tp} is not supported")
    if not bool(r["fits"]):
        raise PlannerError(f"{w.model} at {precision} does not fit on {tp} x {acc.id}: needs "
                           f"{float(r['memory_gb_per_gpu']):.1f} GB per GPU, {acc.id} has "
                           f"{acc.memory.capacity_gb:g} GB; raise tp or quantize")
