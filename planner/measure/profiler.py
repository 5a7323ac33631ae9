"""Time the cost-model regions of a model with torch.profiler: warm-up, cache flush, repetitions, spread.

Each repetition runs under ``torch.profiler.profile(record_shapes=True, with_flops=True)`` (kernel checks,
FLOP counts, the trace, wall times). A region's time is its exclusive time (nested op regions subtracted: a W8A8
linear's ``quant`` region sits inside its GEMM region): on CUDA the device time of the kernels launched inside
it; on CPU with one intra-op thread the thread's CPU time inside it (regions.CpuTimeRecorder; the profiler's
wall time is kept beside it); on CPU with more threads the wall time. A region in which no kernel ran is an
error, not a zero.

Caches are flushed before every forward pass (as triton.testing.do_bench zeroes a buffer before each
repetition): a layer measured alone would otherwise find its weights in a last-level cache that, inside a real
32-layer model, the other layers' weights have long evicted. On this project's CPU the LLC reported is 300 MB,
bigger than an int8 Llama-2-7B layer.
"""
from __future__ import annotations

import gzip
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from planner.measure.regions import LAYER_REGION, STEP_REGION, CpuTimeRecorder, parse_gemm_shape_tag


class MeasurementError(RuntimeError):
    """A run that cannot be trusted (no kernel recorded in a region, no region at all)."""


@dataclass
class RegionRow:
    name: str
    scope: str                      # "layer": inside a repeated layer (scales with layers); "model": around them
    instances: float                # regions per forward step
    times: list[float] = field(default_factory=list)   # per repetition: exclusive seconds per forward step
    wall: list[float] = field(default_factory=list)    # the same from the profiler's wall-clock timestamps
    flops: float = 0.0              # profiler-counted FLOPs per step (aten mm/addmm/bmm/conv formulas)
    kernels: int = 0                # kernel (CPU: aten op) events per step

    @property
    def median_s(self) -> float:
        return statistics.median(self.times)


@dataclass
class PhaseTiming:
    phase: str
    steps: int                      # forward passes per repetition (decode: output_len - 1)
    rows: list[RegionRow]
    step_times: list[float]         # per repetition: mean seconds of one forward pass (the run's timer)
    cpu_share: list[float] = field(default_factory=list)  # per repetition: process CPU time / (wall x threads)
    timer: str = "wall"
    step_wall: list[float] = field(default_factory=list)
    step_unprofiled: list[float] = field(default_factory=list)  # per repetition, without the profiler (CPU thread)
    rep_energy_j: list = field(default_factory=list)   # per unprofiled repetition: board energy (J) or None
    rep_wall_s: list[float] = field(default_factory=list)   # ... and its wall seconds


def timer_for(device: str) -> str:
    """cuda: kernel time on the device; CPU with one intra-op thread: the thread's CPU time (immune to other
    processes taking the core); CPU with more threads: wall time (CPU time would count spin-waiting workers)."""
    if device.startswith("cuda"):
        return "cuda-device"
    return "cpu-thread" if torch.get_num_threads() == 1 else "wall"


class Flusher:
    """Writes a buffer larger than the last-level cache (4x the LLC, at least 64 MiB)."""

    def __init__(self, device: str, nbytes: int | None = None):
        nbytes = nbytes or flush_bytes(device)
        self.buf = torch.ones(nbytes // 4, dtype=torch.float32, device=device)
        self.device = device

    def __call__(self) -> None:
        self.enqueue()
        sync(self.device)

    def enqueue(self) -> None:
        """The flush without waiting for it. On CUDA a read (a sum): a write leaves up to the L2's size of dirty
        lines that the next timed kernel would pay to write back (H100: 50 MB beside a 33 MB bf16 GEMV). On CPU a
        write, as every CPU profile here was taken."""
        if self.device.startswith("cuda"):
            self.buf.sum()
        else:
            self.buf.fill_(1.0)


def flush_bytes(device: str) -> int:
    """Size of the cache-flush buffer: 4x the last-level cache, at least 64 MiB."""
    return max(4 * llc_bytes(device), 64 << 20)


def llc_bytes(device: str) -> int:
    if device.startswith("cuda"):
        return int(getattr(torch.cuda.get_device_properties(device), "L2_cache_size", 50 << 20))
    best = 0
    for idx in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*"):
        try:
            size = (idx / "size").read_text().strip()
            mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(size[-1], 1)
            best = max(best, int(size.rstrip("KMG")) * mult)
        except (OSError, ValueError):
            continue
    return best or (32 << 20)


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _activities(device: str):
    acts = [ProfilerActivity.CPU]
    if device.startswith("cuda"):
        acts.append(ProfilerActivity.CUDA)
    return acts


def parse_events(events, op_names: set[str], cuda: bool, steps: int) -> tuple[dict, list[float]]:
    """Per (name, scope): [exclusive seconds, instances, flops, kernels] summed over the events, and the wall
    seconds of every step region."""
    cpu = [e for e in events if e.device_type == torch.autograd.DeviceType.CPU]
    regions = [e for e in cpu if e.name in op_names]
    if not regions:
        raise MeasurementError("the profiler recorded none of the model's op regions")

    regions_and_step = set(op_names) | {STEP_REGION}

    def t(e) -> float:
        return (device_us(e, regions_and_step) if cuda else e.time_range.elapsed_us()) * 1e-6

    def nearest_region(e):
        p = e.cpu_parent
        while p is not None and p.name not in op_names:
            p = p.cpu_parent
        return p

    def in_layer(e) -> bool:
        p = e.cpu_parent
        while p is not None:
            if p.name == LAYER_REGION:
                return True
            p = p.cpu_parent
        return False

    def own_events(e):
        """Events under a region, stopping at nested regions (those count for themselves)."""
        stack = list(e.cpu_children)
        while stack:
            c = stack.pop()
            if c.name in op_names:
                continue
            yield c
            stack.extend(c.cpu_children)

    def kernels(e) -> int:
        return sum((len(c.kernels) if cuda else 1) for c in own_events(e) if "::" in c.name)

    def flops(e) -> float:
        return sum(float(c.flops or 0) or kernel_flops(c.name, c.input_shapes) for c in own_events(e))

    child_time: dict[int, float] = defaultdict(float)
    for e in regions:
        p = nearest_region(e)
        if p is not None:
            child_time[id(p)] += t(e)
    acc: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0, 0.0])
    empty = []
    for e in regions:
        k = kernels(e)
        if k == 0 and not _only_subregions(e, op_names):
            empty.append(e.name)
        row = acc[(e.name, "layer" if in_layer(e) else "model")]
        row[0] += max(t(e) - child_time[id(e)], 0.0)
        row[1] += 1
        row[2] += flops(e)
        row[3] += k
    if empty:
        raise MeasurementError(f"no kernel was recorded in region(s) {sorted(set(empty))}: the timing would be "
                               "of nothing (is the op running somewhere else?)")
    step_t = [e.time_range.elapsed_us() * 1e-6 for e in cpu if e.name == STEP_REGION]
    if len(step_t) != steps:
        raise MeasurementError(f"expected {steps} forward steps in the trace, found {len(step_t)}")
    return acc, step_t


def device_us(e, regions: set[str]) -> float:
    """Microseconds of the kernels launched under a profiler event (its ops' and nested regions'). Kineto may
    attach a record_function region's own gpu_user_annotation span (first kernel to last, gaps included) to it as
    a 'kernel'; torch's inductor benchmarking drops those events for that reason. A region (a name in
    ``regions``) launches nothing itself, so no 'kernel' of a region is counted."""
    own = 0.0 if e.name in regions else sum(k.duration for k in e.kernels)
    return own + sum(device_us(c, regions) for c in e.cpu_children)


# GEMM kernels the profiler has no FLOP formula for: (index of X [M, K], index of W, is W stored [N, K])
_GEMM_SHAPES = {"mkldnn::_linear_pointwise": (0, 1, True), "onednn::qlinear_pointwise": (0, 3, False),
                "aten::_int_mm": (0, 1, False), "aten::_scaled_mm": (0, 1, False),
                "aten::_weight_int8pack_mm": (0, 1, True)}


def kernel_flops(name: str, shapes) -> float:
    """2*M*K*N from recorded input shapes for the custom GEMM kernels of the recipes, or from the shape event
    the recipes record around fbgemm's linears (regions.gemm_shape_tag: their packed weights' shape is not in
    the trace); the int4 kernel's packed weight is not recorded either: 0, i.e. not counted."""
    tagged = parse_gemm_shape_tag(name)
    if tagged is not None:
        m, k, n = tagged
        return 2.0 * m * k * n
    spec = _GEMM_SHAPES.get(name)
    if spec is None or not shapes:
        return 0.0
    xi, wi, nk = spec
    try:
        x, w = shapes[xi], shapes[wi]
        m = 1
        for d in x[:-1]:
            m *= d
        n = w[0] if nk else w[1]
        return 2.0 * m * x[-1] * n
    except (IndexError, TypeError):
        return 0.0


def _only_subregions(e, op_names) -> bool:
    return bool(e.cpu_children) and all(c.name in op_names for c in e.cpu_children)


def time_phase(phase: str, run_rep, *, steps: int, reps: int, warmup: int, device: str, flusher: Flusher,
               op_names: set[str], trace_path: Path | None = None, progress=None, between=None,
               energy=None) -> PhaseTiming:
    """``run_rep(flush)`` runs ``steps`` forward passes, each inside a STEP_REGION and preceded by ``flush()``.
    Warm-up repetitions are not recorded; each timed repetition runs once without the profiler (the end-to-end
    step time) and once profiled (the op rows), after ``between()`` if given. When ``between()`` returns True
    (it handed the freed heap back: allocator.MemoryGuard) an untimed repetition runs first, faulting the
    activations in again as the warm-up did: on this project's CPU a 2-layer batch-16 prefill of 512 tokens timed
    right after a trim paid ~1 s of page faults per fused MLP GEMM output (721 MB) that a warm heap does not.
    ``energy()`` (power.EnergyCounter: cumulative joules or None) is read around each unprofiled repetition."""
    cuda = device.startswith("cuda")
    timer = timer_for(device)
    for _ in range(warmup):
        run_rep(flusher)
        sync(device)
        if progress is not None:
            progress.update(1)
    per_rep: list[dict] = []
    per_rep_cpu: list[dict] = []
    step_times: list[float] = []
    step_wall: list[float] = []
    shares: list[float] = []
    unprofiled: list[float] = []
    rep_energy: list = []
    rep_wall: list[float] = []
    threads = torch.get_num_threads()
    for r in range(reps):
        # e.g. a device-state probe sample, spread over the repetitions; True: the heap was handed back
        if between is not None and between():
            run_rep(flusher)                 # untimed: fault the activations in again
            sync(device)
        e0, w0 = (energy() if energy else None), time.perf_counter()
        unprofiled.append(_unprofiled_rep(run_rep, flusher, op_names, device, steps, timer))
        e1 = energy() if energy else None
        rep_wall.append(time.perf_counter() - w0)
        rep_energy.append(e1 - e0 if e0 is not None and e1 is not None else None)
        prof = profile(activities=_activities(device), record_shapes=True, with_flops=True)
        rec = CpuTimeRecorder(op_names)
        with _quiet_stderr():
            prof.start()
        w0, c0 = time.perf_counter(), time.process_time()
        try:
            with rec:
                run_rep(flusher)
                sync(device)
        finally:
            w1, c1 = time.perf_counter(), time.process_time()
            with _quiet_stderr():
                prof.stop()
        shares.append((c1 - c0) / ((w1 - w0) * threads))
        acc, st = parse_events(prof.events(), op_names, cuda, steps)
        per_rep.append(acc)
        per_rep_cpu.append(rec.acc)
        step_wall.append(sum(st) / steps)
        step_times.append(sum(rec.steps) / steps if timer == "cpu-thread" else sum(st) / steps)
        if r == 0 and trace_path is not None:
            export_trace(prof, trace_path)
        if progress is not None:
            progress.update(1)
    keys = sorted(set().union(*per_rep))
    rows = []
    timed = per_rep_cpu if timer == "cpu-thread" else per_rep
    for name, scope in keys:
        first = per_rep[0].get((name, scope), [0.0, 0.0, 0.0, 0.0])
        rows.append(RegionRow(name, scope, instances=first[1] / steps,
                              times=[a.get((name, scope), [0.0])[0] / steps for a in timed],
                              wall=[a.get((name, scope), [0.0])[0] / steps for a in per_rep],
                              flops=first[2] / steps, kernels=int(first[3] / steps)))
    return PhaseTiming(phase, steps, rows, step_times, shares, timer, step_wall, unprofiled, rep_energy, rep_wall)


def _unprofiled_rep(run_rep, flusher, op_names, device: str, steps: int, timer: str) -> float:
    """Mean seconds per forward step of one repetition without the profiler: the end-to-end time a user gets.
    The profiler records every aten op in the calling thread (tens of microseconds each with shapes), which the
    many small ops of a decode step would otherwise add to the end-to-end time."""
    rec = CpuTimeRecorder(op_names, clock=time.thread_time if timer == "cpu-thread" else time.perf_counter)
    with rec:
        run_rep(flusher)
        sync(device)
    if len(rec.steps) != steps:
        raise MeasurementError(f"expected {steps} forward steps in an unprofiled repetition, found {len(rec.steps)}")
    return sum(rec.steps) / steps


@contextmanager
def _quiet_stderr():
    """Silence the profiler's C++ start/stop log lines (written to fd 2, not through Python)."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def export_trace(prof, path: Path) -> None:
    """Chrome trace of one repetition, gzip-compressed, written atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as d:
        raw = Path(d) / "trace.json"
        prof.export_chrome_trace(str(raw))
        tmp = path.with_suffix(path.suffix + ".tmp")
        with open(raw, "rb") as fi, gzip.open(tmp, "wb", compresslevel=9) as fo:
            shutil.copyfileobj(fi, fo)
        os.replace(tmp, path)
