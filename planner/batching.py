"""The two batching engines of the serving simulation, as simpy processes over one workload's queue.

- LLMs and vision-language pipelines: continuous batching (Yu et al., Orca, OSDI 2022; vLLM's scheduler). At
  each iteration boundary a replica admits waiting requests, up to ``max_seqs`` in flight (memory for their full
  KV cache reserved up front, TensorRT-LLM's "guaranteed no evict" policy) and ``token_budget`` prompt tokens per
  prefill iteration; it runs that prefill (with the vision encoder of the admitted studies' images) first, as
  vLLM's default scheduler does, and otherwise runs decode steps for every request in flight.
- Vision models: static batches of up to ``max_batch`` images, sent when full or when the oldest request has
  waited ``max_wait_s`` (Triton's dynamic batcher).

The decode step is linear in the context (attention reads C tokens of KV per sequence), so between two events
(an arrival or a completion) the engine advances whole runs of steps in closed form:
sum_{j<n} (a + b (C + j)) = n (a + b C) + b n (n - 1) / 2. Every step still costs its own time; only the number
of simulation events shrinks, so a day of the busiest preset takes well under a second.
"""
from __future__ import annotations

import bisect
import math
from collections import deque

import numpy as np

from planner.service_tables import LlmService, StaticService

SHARED_SLICE_S = 0.1            # assumption: engines sharing a GPU take turns at about this granularity


# --------------------------------------------------------------------------------------------- simulation state

class WorkloadRun:
    """Mutable state of one workload in a simulation run; lives only inside planner.serving.run_fleet.

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


class GpuLock:
    """A GPU group shared by several engines: FIFO, one iteration at a time. Taking a free lock costs no
    simulation event (cheaper than a simpy Resource, which schedules one per request)."""

    def __init__(self, env):
        self.env, self.held, self.waiters = env, False, deque()

    def acquire(self):
        """Take the lock (``yield from lock.acquire()`` in an engine): at once if it is free, else wait for the
        event that fires when the lock passes to this engine."""
        if not self.held:
            self.held = True
            return
        ev = self.env.event()
        self.waiters.append(ev)
        yield ev

    def release(self) -> None:
        if self.waiters:
            self.waiters.popleft().succeed()      # hand over directly: the lock stays held
        else:
            self.held = False


def llm_replica(env, run: WorkloadRun, svc: LlmService, group: int, gpu=None, peers=()):
    """One continuous-batching engine. ``gpu``: a GpuLock when the GPU group is shared with other
    engines; the engine then holds it for one iteration (or a decode slice of SHARED_SLICE_S) at a time."""
    cohorts = []          # [requests, decode steps left, context per sequence, ids]; a cohort finishes together
    while True:
        n_run = sum(c[0] for c in cohorts)
        if not cohorts and not run.waiting():
            yield run.idle_wait()
            continue
        if gpu is not None:
            yield from gpu.acquire()
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


def _decode_chunk(env, run: WorkloadRun, svc: LlmService, cohorts: list, n_run: int, group: int, gpu, peers):
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


def _next_batch(run: WorkloadRun, svc: StaticService) -> tuple[int, int, bool]:
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


def static_replica(env, run: WorkloadRun, svc: StaticService, rng, group: int, gpu=None):
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
            yield from gpu.acquire()
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

