"""Device-state probe: the device's speed while a run is measured, against its profile.

A shared or cloud machine does not keep one speed: on this project's CPU the same fp32 GEMM ran 25 % slower an
hour after its profile was measured (other tenants, host frequency), and two campaigns 13 minutes apart timed
the same DenseNet 39 % apart. A prediction from a profile measured at another moment then carries that
drift as error. So every measured run times two points of its profile's GEMM sweep before its phases, before every
repetition and after its phases, with the device's most regular kernel (fp32 on CPU, bf16 on CUDA): the M=1 GEMV
(weight streaming: memory state) and the M=128 GEMM (compute state), same kernel, shape and cache flush as
``planner microbench``.
Validation predicts from the profile scaled by them (peaks by the compute ratio, bandwidth by the memory ratio;
the profile's shapes, efficiencies and overheads unchanged) and prints the error on the profile as measured
beside it, and warns when a ratio leaves +-15 %. On this CPU the scaling took two fp32 prefill errors of -28 % and
+20 % on the unscaled profile (runs 13 minutes after their profiles) to -12 % and -8 %.
"""
from __future__ import annotations


PROBE_SHAPE = (4096, 4096)          # (K, N): the first shape of the full microbenchmark sweep
PROBE_MS = (1, 128)                 # streaming GEMV, compute-bound GEMM (microbench.COMPUTE_BOUND_M)


def probe_scheme(device: str) -> str:
    """The GEMM kernel probed: the device's most regular one (fp32 on CPU, bf16 on CUDA), for every precision.
    It measures the host's state (frequency, other tenants' memory traffic). Kernel-specific swings are beyond a
    probe: on this project's CPU the AMX kernels (bf16, oneDNN int8) swung 2x within minutes, and an int8 probe
    point ran at 0.5x of a profile taken 5 minutes earlier while the model's own int8 GEMMs did not."""
    return "bf16" if device.startswith("cuda") else "fp32"


def probe_plan(prof: dict | None, device: str) -> tuple[str, int, int, tuple[int, int]]:
    """(scheme, K, N, (M small, M large)) to probe: the full sweep's 4096 x 4096 at M=1 and 128 of the probe
    scheme, or, for a profile without those points (a --quick one), its first shape at its smallest and largest M."""
    k, n = PROBE_SHAPE
    scheme = probe_scheme(device)
    pts = (prof or {}).get("gemm", {}).get(scheme, {}).get("points", [])
    if not pts or all(_profile_point(prof, scheme, m, k, n) is not None for m in PROBE_MS):
        return scheme, k, n, PROBE_MS
    k, n = pts[0]["k"], pts[0]["n"]
    ms = sorted(p["m"] for p in pts if (p["k"], p["n"]) == (k, n))
    return scheme, k, n, (ms[0], ms[-1])


def run_probe(device: str, flusher, reps: int = 5, plan: tuple | None = None) -> dict:
    """Time the probe points now (minimum of ``reps``, caches flushed before each)."""
    from planner.measure.microbench import _bench_shape, _Sync
    sync = _Sync(device)
    scheme, k, n, ms = plan or (probe_scheme(device), PROBE_SHAPE[0], PROBE_SHAPE[1], PROBE_MS)
    pts = _bench_shape(scheme, ms, k, n, device, flusher, reps, sync)
    return {"scheme": scheme, "k": k, "n": n, "timer": sync.timer,
            "points": [{"m": p["m"], "seconds": p["seconds"], "median_s": p["median_s"]} for p in pts]}


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


def probe_plan_for_sweep(ms, shapes, device: str) -> tuple[str, int, int, tuple[int, int]]:
    """probe_plan before the sweep has run: the same points, chosen from the sweep's M values and shapes."""
    k, n = PROBE_SHAPE
    if (k, n) in tuple(shapes) and all(m in ms for m in PROBE_MS):
        return probe_scheme(device), k, n, PROBE_MS
    k, n = shapes[0]
    return probe_scheme(device), k, n, (min(ms), max(ms))


def _samples(probes: list[dict]) -> dict[tuple, list[float]]:
    out: dict[tuple, list[float]] = {}
    for pr in probes:
        for pt in pr["points"]:
            out.setdefault((pr["scheme"], pt["m"], pr["k"], pr["n"]), []).append(pt["seconds"])
    return out


def device_state(prof: dict, probes: list[dict] | None) -> dict | None:
    """{'compute': ratio, 'memory': ratio, 'basis': text} of the run's speed to the profile's, or None where the
    run has no probe or the profile lacks the probed points (e.g. a --quick profile). Each ratio is the profile's
    typical time of the point over the median of the run's samples of it (before the run, one before every
    repetition, after it). The profile's typical time: the median of its reference probes (taken the way a run takes
    them, once per round of the sweep: a probe's fresh module and single repetitions read 10-20 % apart from the
    sweep's own points here, and a burst of them after the sweep read one moment of it) or, in a profile without them, ``_reference_time`` (medians over the swept
    shapes). Medians, not minima: the minimum of many samples of a millisecond kernel finds
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
    if len(samples) != 2:               # one small-M and one large-M point of one scheme and shape
        return None
    (small, xs_small), (large, xs_large) = sorted(samples.items(), key=lambda kv: kv[0][1])
    ref = _samples(prof.get("probe_reference") or [])
    if small in ref and large in ref:
        ref_small, ref_large = statistics.median(ref[small]), statistics.median(ref[large])
        how = f"median of the profile's {len(ref[small])} reference probes"
    else:
        ref_small, ref_large = (_reference_time(prof, *k) for k in (small, large))
        how = "profile's typical time (median over its swept shapes)"
    t_small, t_large = statistics.median(xs_small), statistics.median(xs_large)
    if ref_small is None or ref_large is None or t_small <= 0 or t_large <= 0:
        return None
    return {"compute": ref_large / t_large, "memory": ref_small / t_small, "samples": len(xs_small),
            "basis": f"{small[0]} GEMM K={small[2]} N={small[3]}: {how} / median of {len(xs_small)} run-time "
                     f"samples at M={small[1]} (memory) and M={large[1]} (compute), taken before, during and after "
                     "the run"}
