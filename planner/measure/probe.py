"""Device-state probe: the device's speed while a run is measured, against its profile.

A shared or cloud machine does not keep one speed: on this project's CPU the same fp32 GEMM ran 25 % slower an
hour after its profile was measured (other tenants, host frequency), and two campaigns 13 minutes apart timed
the same DenseNet 39 % apart. A prediction from a profile measured at another moment then carries that
drift as error. So every measured run times two points of its profile's own GEMM sweep before its phases,
before every repetition and after its phases, with the run's own GEMM kernel (fp32, bf16 or the W8A8 int8 one:
the AMX kernels drifted apart from the fp32 ones): the M=1 GEMV (weight streaming: memory state) and the M=128
GEMM (compute state), same kernel, shape, cache flush and statistic (the minimum) as ``planner microbench``.
Validation reports the ratios and evaluates the roofline on the profile scaled by them (peaks by the compute
ratio, bandwidth by the memory ratio; the profile's shapes, efficiencies and overheads unchanged), beside the
error on the unscaled profile.
"""
from __future__ import annotations

import math

PROBE_SHAPE = (4096, 4096)          # (K, N): the first shape of the full microbenchmark sweep
PROBE_MS = (1, 128)                 # streaming GEMV, compute-bound GEMM (microbench.COMPUTE_BOUND_M)


# precision -> the microbenchmark scheme of its GEMMs (on this project's CPU the bf16/int8 AMX kernels and the
# fp32 ones drifted apart: 2x against 1.2x between two profiles an hour apart, so a run probes its own kernel)
_SCHEME_OF = {"fp32": "fp32", "bf16": "bf16", "fp16": "fp16", "fp8": "fp8", "w8a8": "int8", "w8a16": "w8a16",
              "w4a16": "w4a16"}


def probe_scheme(device: str, precision: str | None = None) -> str:
    """The GEMM scheme probed for a run in ``precision``: its own GEMM kernel; without one (or for a scheme a
    CUDA/CPU profile does not sweep) the most regular kernel of the device (fp32 on CPU, bf16 on CUDA)."""
    cpu = not device.startswith("cuda")
    base = (precision or "").split("-o")[0]
    scheme = _SCHEME_OF.get(base)
    if cpu and scheme in ("fp16", "fp8", "w4a16"):
        scheme = {"fp16": "bf16"}.get(scheme)      # CPU recipes run 16-bit work in bf16; no fp8/int4 kernels
    return scheme or ("fp32" if cpu else "bf16")


def probe_plan(prof: dict | None, device: str, precision: str | None = None) -> tuple[str, int, int, tuple[int, int]]:
    """(scheme, K, N, (M small, M large)) to probe: the full sweep's 4096 x 4096 at M=1 and 128 of the run's GEMM
    scheme (fp32 where the profile lacks that scheme), or, for a profile without those points (a --quick one),
    its first shape at its smallest and largest M."""
    k, n = PROBE_SHAPE
    scheme = probe_scheme(device, precision)
    if prof and scheme not in prof.get("gemm", {}):
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


def _profile_point(prof: dict, scheme: str, m: int, k: int, n: int) -> float | None:
    for p in prof.get("gemm", {}).get(scheme, {}).get("points", []):
        if (p["m"], p["k"], p["n"]) == (m, k, n):
            return p["seconds"]
    return None


def device_state(prof: dict, probes: list[dict] | None) -> dict | None:
    """{'compute': ratio, 'memory': ratio, 'basis': text} of the run's speed to the profile's, or None where the
    run has no probe or the profile lacks the probed points (e.g. a --quick profile). Each ratio is the profile's
    time of the point over the minimum of the run's samples of it: the samples are spread over the whole run
    (before it, before every repetition, after it), as the run's own repetitions are, and the minimum is the
    statistic of both the profile and the run. < 1: the device ran slower than when profiled."""
    if not probes:
        return None
    best: dict[tuple, float] = {}
    for pr in probes:
        for pt in pr["points"]:
            key = (pr["scheme"], pt["m"], pr["k"], pr["n"])
            best[key] = min(best.get(key, math.inf), pt["seconds"])
    if len(best) != 2:                  # one small-M and one large-M point of one scheme and shape
        return None
    (small, t_small), (large, t_large) = sorted(best.items(), key=lambda kv: kv[0][1])
    ref_small, ref_large = (_profile_point(prof, k[0], k[1], k[2], k[3]) for k in (small, large))
    if ref_small is None or ref_large is None or t_small <= 0 or t_large <= 0:
        return None
    n = sum(1 for pr in probes for pt in pr["points"] if pt["m"] == small[1])
    return {"compute": ref_large / t_large, "memory": ref_small / t_small, "samples": n,
            "basis": f"{small[0]} GEMM K={small[2]} N={small[3]}: profile time / minimum of {n} run-time samples at "
                     f"M={small[1]} (memory) and M={large[1]} (compute), taken before, during and after the run"}
