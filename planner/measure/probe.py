"""Device-state probe: the device's speed while a run is measured, against its profile.

A shared or cloud machine does not keep one speed: on this project's CPU the same fp32 GEMM ran 25 % slower an
hour after its profile was measured (other tenants, host frequency), and two campaigns 13 minutes apart timed
the same DenseNet 39 % apart. A prediction from a profile measured at another moment then carries that
drift as error. So every measured run times two points of its profile's GEMM sweep before its phases, before every
repetition and after its phases, with the device's most regular kernel (fp32 on CPU, bf16 on CUDA): an M=1 GEMV
(weight streaming: memory state) and an M=128 GEMM (compute state), same kernel, shapes and cache flush as
``planner microbench``.
Runs through fbgemm's int8 kernel also time that kernel's M=128 point (KERNEL_PROBE): its speed drifted apart
from fp32's here, and the int8 GEMMs' peak scales by its own ratio. Validation predicts from the profile scaled by them (peaks by the compute ratio, bandwidth by the memory ratio;
the profile's shapes, efficiencies and overheads unchanged) and prints the error on the profile as measured
beside it, and warns when a ratio leaves +-15 %. On this CPU the scaling took two fp32 prefill errors of -28 % and
+20 % on the unscaled profile (runs 13 minutes after their profiles) to -12 % and -8 %.
"""
from __future__ import annotations


# (M, K, N) of the two points. Memory: the M=1 GEMV of a Llama MLP shape, the kind of GEMV a decode step spends
# most of its time in; compute: the M=128 GEMM of the sweep's first shape. The memory point was the 4096 x 4096
# GEMV (64 MB) until 2026-11-23: on two threads here its per-round time tracked a Llama layer's decode GEMV chain
# with correlation 0.59 (s.d. of the log ratio 0.106, 100 rounds), the 4096 x 11008 GEMV (180 MB) with 0.79
# (0.072); on one thread 0.114 vs 0.107 (70 rounds; benchmarks/probe_tracking.py). Two-thread batch-1 decodes
# scaled by the small GEMV came out 8-20 % too fast in 15 of 19 runs (mean -10.9 %, against the 00:26 profile).
MEMORY_PROBE = (1, 4096, 11008)
COMPUTE_PROBE = (128, 4096, 4096)      # microbench.COMPUTE_BOUND_M
# on a GPU an M=128 GEMM of 4096 x 4096 is still bound by its weights (H100 bf16: ~300 FLOP per byte to turn
# compute-bound): the compute point there is a square 4096 GEMM (microbench.CUDA_MS)
CUDA_COMPUTE_PROBE = (4096, 4096, 4096)
# The int8 kernel's own compute point, probed beside the fp32 ones in runs through fbgemm (and once per round of
# the profile's sweep): on this project's 2-vCPU VM the fbgemm int8 GEMMs drifted apart from fp32. Two-thread
# w8a8 runs at input 512 (2026-11-23 04:31-04:45 UTC) came out 24-28 % slow against the profile of 03:42 while the
# fp32 probe read the device at x1.04; the sweep's own int8 point, timed again at 04:50, read x0.74 of the profile.
KERNEL_PROBE = (128, 4096, 4096)
KERNEL_PROBED = ("int8-fbgemm",)       # CPU schemes whose runs carry a kernel probe (the AMX ones swing too fast)


def probe_scheme(device: str) -> str:
    """The GEMM kernel probed: the device's most regular one (fp32 on CPU, bf16 on CUDA), for every precision.
    It measures the host's state (frequency, other tenants' memory traffic). The AMX kernels' swings are beyond a
    probe: on this project's CPU they (bf16, oneDNN int8) swung 2x within minutes, and a oneDNN int8 probe point
    ran at 0.5x of a profile taken 5 minutes earlier while the model's own int8 GEMMs did not. The fbgemm int8
    kernel (AVX-512 VNNI) gets a probe of its own beside this one (KERNEL_PROBE, kernel_state)."""
    return "bf16" if device.startswith("cuda") else "fp32"


def default_points(device: str) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """(memory point, compute point) of the device's probe."""
    return MEMORY_PROBE, (CUDA_COMPUTE_PROBE if device.startswith("cuda") else COMPUTE_PROBE)


def probe_plan(prof: dict | None, device: str) -> tuple[str, tuple[tuple[int, int, int], ...]]:
    """(scheme, ((M, K, N) memory point, (M, K, N) compute point)) to probe: MEMORY_PROBE and COMPUTE_PROBE of
    the probe scheme, or, for a profile without those points (a --quick one), its first shape at its smallest and
    largest M."""
    scheme = probe_scheme(device)
    pts = (prof or {}).get("gemm", {}).get(scheme, {}).get("points", [])
    default = default_points(device)
    if not pts or all(_profile_point(prof, scheme, *pt) is not None for pt in default):
        return scheme, default
    k, n = pts[0]["k"], pts[0]["n"]
    ms = sorted(p["m"] for p in pts if (p["k"], p["n"]) == (k, n))
    return scheme, ((ms[0], k, n), (ms[-1], k, n))


def run_probe(device: str, flusher, reps: int = 5, plan: tuple | None = None) -> dict:
    """Time the probe points now (each: minimum of ``reps``, caches flushed before each)."""
    from planner.measure.microbench import _bench_shape, _Sync
    sync = _Sync(device)
    scheme, points = plan or (probe_scheme(device), default_points(device))
    out = []
    for m, k, n in points:
        out += _bench_shape(scheme, (m,), k, n, device, flusher, reps, sync)
    return {"scheme": scheme, "timer": sync.timer,
            "points": [{"m": p["m"], "k": p["k"], "n": p["n"], "seconds": p["seconds"], "median_s": p["median_s"]}
                       for p in out]}


def _profile_point(prof: dict, scheme: str, m: int, k: int, n: int, stat: str = "seconds") -> float | None:
    """A sweep point's time: ``seconds`` (the minimum of its repetitions) or ``median_s``."""
    for p in prof.get("gemm", {}).get(scheme, {}).get("points", []):
        if (p["m"], p["k"], p["n"]) == (m, k, n):
            return p.get(stat, p["seconds"])
    return None


def _reference_time(prof: dict, scheme: str, m: int, k: int, n: int) -> float | None:
    """The profile's typical time of the probe point, read off every shape the sweep timed at that M: the median
    over those shapes of their median time per unit of work (bytes at the smallest M, a streaming GEMV; FLOPs
    above), times the probe point's work. One point's median of 7 rounds is itself noisy on a shared machine (a
    profile here had the 4096 x 4096 GEMV's median 35 % above its minimum while its other shapes' were within
    10 %); the shapes together are not."""
    import statistics
    sweep = prof.get("gemm", {}).get(scheme, {}).get("points", [])
    pts = [p for p in sweep if p["m"] == m]
    probe = next((p for p in pts if (p["k"], p["n"]) == (k, n)), None)
    if probe is None:
        return None
    streaming = m == min(p["m"] for p in sweep)
    work = (lambda p: p["weight_bytes"] + p["act_bytes"]) if streaming else (lambda p: 2.0 * p["m"] * p["k"] * p["n"])
    per_unit = statistics.median(p.get("median_s", p["seconds"]) / work(p) for p in pts)
    return per_unit * work(probe)


def probe_plan_for_sweep(ms, shapes, device: str) -> tuple[str, tuple[tuple[int, int, int], ...]]:
    """probe_plan before the sweep has run: the same points, chosen from the sweep's M values and shapes."""
    default = default_points(device)
    if all(m in ms and (k, n) in tuple(shapes) for m, k, n in default):
        return probe_scheme(device), default
    k, n = shapes[0]
    return probe_scheme(device), ((min(ms), k, n), (max(ms), k, n))


def _samples(probes: list[dict]) -> dict[tuple, list[float]]:
    """{(scheme, M, K, N): [seconds, ...]}; probes of runs before 2026-11-23 give K, N once per probe."""
    out: dict[tuple, list[float]] = {}
    for pr in probes:
        for pt in pr["points"]:
            key = (pr["scheme"], pt["m"], pt.get("k", pr.get("k")), pt.get("n", pr.get("n")))
            out.setdefault(key, []).append(pt["seconds"])
    return out


def _typical(xs: list[float]) -> float:
    import statistics
    return statistics.median(xs)


def device_state(prof: dict, probes: list[dict] | None) -> dict | None:
    """{'compute': ratio, 'memory': ratio, 'basis': text} of the run's speed to the profile's, or None where the
    run has no probe or the profile lacks the probed points (e.g. a --quick profile). Each ratio is the profile's
    typical time of the point over the median of the run's samples of it (before the run, one before every
    repetition, after it). The profile's typical time: the median of its reference probes (taken the way a run takes
    them, once per round of the sweep: a probe's fresh module and single repetitions read 10-20 % apart from the
    sweep's own points here, and a burst of them after the sweep read one moment of it) or, in a profile without
    them, ``_reference_time`` (medians over the swept shapes). Medians, not minima: the minimum of many samples of a millisecond kernel finds
    fleeting quiet moments that a whole forward pass does not (on this project's CPU the minimum of 22 samples
    said 1.3-1.4x faster than the profile while the model ran 1.05-1.2x faster), and a median does not drift
    with the number of samples. < 1: the device ran slower than when profiled."""
    import statistics
    if not probes:
        return None
    regular = "bf16" if (prof.get("meta") or {}).get("kind") == "gpu" else "fp32"
    if any(pr["scheme"] != regular for pr in probes):  # runs of an earlier harness probed their own (AMX) kernel
        return None
    samples = _samples(probes)
    if len(samples) != 2:               # one small-M (memory) and one large-M (compute) point of one scheme
        return None
    (small, xs_small), (large, xs_large) = sorted(samples.items(), key=lambda kv: kv[0][1])
    ref = _samples(prof.get("probe_reference") or [])

    def reference(key):     # per point: profiles probed before 2026-11-23 hold the 4096 x 4096 GEMV only
        if key in ref:
            return _typical(ref[key]), f"median of the profile's {len(ref[key])} reference probes"
        return _reference_time(prof, *key), "profile's typical time (median over its swept shapes)"
    (ref_small, how_small), (ref_large, how_large) = reference(small), reference(large)
    how = how_small if how_small == how_large else f"{how_small} (memory), {how_large} (compute)"
    t_small, t_large = _typical(xs_small), _typical(xs_large)
    if ref_small is None or ref_large is None or t_small <= 0 or t_large <= 0:
        return None
    return {"compute": ref_large / t_large, "memory": ref_small / t_small, "samples": len(xs_small),
            "basis": f"{small[0]} GEMM M={small[1]} K={small[2]} N={small[3]} (memory), M={large[1]} K={large[2]} "
                     f"N={large[3]} (compute): {how} / median of {len(xs_small)} run-time samples, taken before, "
                     "during and after the run"}


UNSTEADY_TOL = 0.10   # the sweep and its reference probes disagree by more than this


def sweep_vs_reference(prof: dict) -> dict | None:
    """{'memory': ratio, 'compute': ratio} of the sweep's own median time at each probe point over the median of
    the reference probes taken once per round of that sweep, or None for a profile without per-round probes. The
    device-state scaling rests on the two agreeing (same kernel, shape and rounds; the probe builds a fresh module
    each time). Here they agreed within 0.94-1.07 in eight of the ten profiles taken with per-round probes
    (2026-11-22 23:48 to 11-23 02:55). The 1-thread profile of 01:22 UTC
    (2026-11-23) read 1.15 at M=128: its fp32 sweep at 103-108 GFLOP/s where the runs after it ran their GEMMs at
    132, and its fp32 prefills came out +15..+36 %. The 2-thread one of 02:46 read 0.84 (memory) and 1.12
    (compute), the same offset in every round (per-round times in the profile), and its runs still validated
    within 15.2 %: a disagreement is a warning, not a verdict."""
    import statistics
    if not prof.get("probe_reference_per_round"):
        return None
    ref = _samples(prof.get("probe_reference") or [])
    if len(ref) != 2:
        return None
    (small, xs_small), (large, xs_large) = sorted(ref.items(), key=lambda kv: kv[0][1])
    out = {}
    for what, (scheme, m, k, n), xs in (("memory", small, xs_small), ("compute", large, xs_large)):
        t = _profile_point(prof, scheme, m, k, n, "median_s")
        if t is None or not xs or statistics.median(xs) <= 0:
            return None
        out[what] = t / statistics.median(xs)
    return out


def unsteady_note(prof: dict) -> str | None:
    """A one-line warning when sweep_vs_reference leaves 1 +- UNSTEADY_TOL, else None."""
    r = sweep_vs_reference(prof)
    if not r:
        return None
    off = {k: v for k, v in r.items() if abs(v - 1.0) > UNSTEADY_TOL}
    if not off:
        return None
    what = ", ".join(f"{k} point x{v:.2f}" for k, v in off.items())
    return (f"the profile of {prof.get('date', '?')} disagrees with itself: its GEMM sweep read {what} its own "
            "reference probes of the same rounds (the device-state scaling assumes they agree); its predictions "
            "may be off by as much: a second planner microbench tells whether it was the machine")


def kernel_probe_plan(prof: dict | None, scheme: str | None) -> tuple[str, tuple[tuple[int, int, int], ...]] | None:
    """(scheme, (KERNEL_PROBE,)) for a run whose GEMMs run ``scheme`` when it is one of KERNEL_PROBED and the
    profile swept that point (or there is no profile yet to check), else None."""
    if scheme not in KERNEL_PROBED:
        return None
    if prof is not None and _profile_point(prof, scheme, *KERNEL_PROBE) is None:
        return None
    return scheme, (KERNEL_PROBE,)


def kernel_state(prof: dict, probes: list[dict] | None) -> dict | None:
    """{'scheme', 'compute': ratio, 'samples', 'basis'} of the run's int8 kernel speed to the profile's at
    KERNEL_PROBE (< 1: slower than profiled), or None without samples or a reference. The reference: the median
    of the profile's per-round kernel probes when it has them, else ``_reference_time`` off its sweep."""
    if not probes:
        return None
    samples = _samples(probes)
    if len(samples) != 1:
        return None
    (key, xs), = samples.items()
    ref = _samples(prof.get("kernel_probe_reference") or [])
    if key in ref:
        t_ref, how = _typical(ref[key]), f"median of the profile's {len(ref[key])} reference probes"
    else:
        t_ref, how = _reference_time(prof, *key), "profile's typical time (median over its swept shapes)"
    t_run = _typical(xs)
    if t_ref is None or t_run <= 0:
        return None
    return {"scheme": key[0], "compute": t_ref / t_run, "samples": len(xs),
            "basis": f"{key[0]} GEMM M={key[1]} K={key[2]} N={key[3]}: {how} / median of {len(xs)} run-time samples"}


DRIFT_TOL = 1.3   # a new profile this far (either way) from the host's usual speed is suspect
DRIFT_PROFILES = 3   # the usual speed: the median over this many profiles before it


def vs_previous(new: dict, olds) -> dict | None:
    """{'compute', 'memory', 'previous_dates'}: the host's speed while ``new`` was measured over its usual speed
    in the profiles before it (``olds``, newest first, the last DRIFT_PROFILES of them): per profile, ``new``'s
    reference probes taken as run samples against it (< 1: the new profile's host was slower), then the median
    over them, so that one odd profile before does not make a normal new one look odd. None where they lack the
    probes."""
    import statistics
    if isinstance(olds, dict):
        olds = [olds]
    if not new.get("probe_reference"):
        return None
    states = [st for st in (device_state(o, new["probe_reference"]) for o in (olds or [])[:DRIFT_PROFILES] if o)
              if st is not None]
    if not states:
        return None
    return {"compute": statistics.median(st["compute"] for st in states),
            "memory": statistics.median(st["memory"] for st in states),
            "previous_dates": [o.get("date") for o in (olds or [])[:DRIFT_PROFILES] if o]}


def drift_note(r: dict | None) -> str | None:
    """A one-line warning when vs_previous leaves 1/DRIFT_TOL..DRIFT_TOL, else None. On this project's VM a
    profile was once measured through ten minutes in which the host ran 2.3x slower than during the runs after
    it (x0.52 of the profile before it, which had read 0.93-1.02 of its own predecessors): scaled to the runs'
    probed state they still missed by up to 35 %, as measured by up to 212 %."""
    if not r:
        return None
    off = {k: r[k] for k in ("compute", "memory") if not 1 / DRIFT_TOL <= r[k] <= DRIFT_TOL}
    if not off:
        return None
    what = ", ".join(f"{k} x{v:.2f}" for k, v in off.items())
    dates = ", ".join(str(d) for d in (r.get("previous_dates") or [r.get("previous_date")]))  # 08:30's: one date
    return (f"this profile read the host at {what} of its speed in the profiles before it ({dates}): the host "
            "may have been in a slow (or fast) spell; runs are scaled to the state they probe, but a profile far "
            "from the host's usual state skews what it measured: run planner microbench again")
