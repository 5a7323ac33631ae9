"""Preflight of the CUDA paths (~20 s on a lent H100/H200), the first step of the GPU campaign's stage A.

The CUDA code of planner/measure/ was written and desk-checked against torch's source on a CPU-only machine; this
checks on the GPU what reading could not prove, each check on its own (one failure does not hide the others):
every recipe's linear against fp32 at M = 1, 8, 17 and 64 (the kernels exist and are wired right: _scaled_mm,
_int_mm with M padded to 17, _weight_int8pack_mm, tinygemm int4); synchronising calls hidden in one forward of
each recipe's linear (torch.cuda.set_sync_debug_mode); whether a record_function region carries its own
gpu_user_annotation span as a 'kernel' (profiler.device_us leaves such a 'kernel' out); the microbenchmark's
event timing of a bf16 GEMM against the host clock; NVML's power, limit and energy counter. Prints one line per
check and PREFLIGHT OK or PREFLIGHT FAILED (exit 1).

    PYTHONPATH=/tmp/site:$PWD python3 benchmarks/cuda_preflight.py
"""
from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
from torch.profiler import ProfilerActivity, profile, record_function  # noqa: E402

from planner.measure import recipes as rc  # noqa: E402

PRECISIONS = ("fp8", "w8a8", "w8a8-o1", "w8a16", "w4a16", "fp16", "bf16")
failures: list[str] = []


def check(name: str, fn) -> None:
    try:
        print(f"ok   {name}: {fn()}", flush=True)
    except Exception as e:  # noqa: BLE001 - every check reports, none stops the others
        failures.append(name)
        print(f"FAIL {name}: {type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}", flush=True)


def linear_of(prec: str, k: int = 4096, n: int = 4096):
    r = rc.make_recipe(prec, "cuda")
    lin = nn.Linear(k, n, bias=False, dtype=r.act_dtype, device="cuda")
    if prec == "fp8":
        return rc.Fp8Linear(lin, 4.0), r
    if prec == "w8a16":
        return rc.W8A16Linear(lin, r.act_dtype), r
    if prec == "w4a16":
        return rc.W4A16Linear(lin), r
    if prec.startswith("w8a8"):
        static = 4 / 127 if r.granularity == "per-tensor-static" else None
        return rc.W8A8Linear(lin, r.granularity, r.int8_backend, static, r.act_dtype), r
    return lin, r


def hidden_syncs() -> str:
    out = {}
    for prec in PRECISIONS[:5]:
        mod, r = linear_of(prec)
        x = torch.randn(1, 4096, device="cuda", dtype=r.act_dtype)
        with torch.no_grad(), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                mod(x)
            finally:
                torch.cuda.set_sync_debug_mode("default")
        out[prec] = sum("synchroniz" in str(w.message) for w in caught)
    return f"synchronising calls per forward: {out}"


def o3_call() -> str:
    mod, r = linear_of("w8a8")
    x = torch.randn(1, 4096, device="cuda", dtype=r.act_dtype)
    with torch.no_grad():
        mod(x)
        torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(200):
            mod(x)
        torch.cuda.synchronize()
    return f"{(time.perf_counter() - t) / 200 * 1e6:.1f} us per W8A8-O3 GEMV call (host + device, back to back)"


def annotation() -> str:
    from planner.measure.profiler import device_us
    a = torch.randn(4096, 4096, device="cuda", dtype=torch.bfloat16)
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as p:
        with record_function("region"):
            a @ a
            time.sleep(0.002)                    # a host gap between the two GEMMs
            a @ a
        torch.cuda.synchronize()
    e = next(e for e in p.events() if e.name == "region" and e.device_type == torch.autograd.DeviceType.CPU)
    own = [(k.name, round(k.duration, 1)) for k in e.kernels]
    return (f"device_time_total {e.device_time_total:.1f} us, device_us {device_us(e, {'region'}):.1f} us, "
            f"the region's own 'kernels' {own}")


def event_timing() -> str:
    from planner.measure.microbench import _Sync, _time_once
    from planner.measure.profiler import Flusher
    sync, flusher = _Sync("cuda"), Flusher("cuda")
    lin = nn.Linear(4096, 4096, bias=False, dtype=torch.bfloat16, device="cuda")
    out = {}
    with torch.no_grad():
        for m in (1, 128, 4096):
            x = torch.randn(m, 4096, device="cuda", dtype=torch.bfloat16)
            lin(x)
            ev = min(_time_once(lambda: lin(x), flusher, sync) for _ in range(5))
            host = []
            for _ in range(5):
                flusher()
                t = time.perf_counter()
                lin(x)
                torch.cuda.synchronize()
                host.append(time.perf_counter() - t)
            out[m] = f"events {ev * 1e6:.1f} us vs host clock {min(host) * 1e6:.1f} us"
    return "; ".join(f"M={m}: {v}" for m, v in out.items())


def nvml() -> str:
    import pynvml
    pynvml.nvmlInit()
    h = pynvml.nvmlDeviceGetHandleByIndex(0)
    return (f"{pynvml.nvmlDeviceGetName(h)} power {pynvml.nvmlDeviceGetPowerUsage(h) / 1e3:.0f} W, limit "
            f"{pynvml.nvmlDeviceGetPowerManagementLimit(h) / 1e3:.0f} W, energy counter "
            f"{pynvml.nvmlDeviceGetTotalEnergyConsumption(h)} mJ")


def main() -> int:
    print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name(), torch.cuda.get_device_capability(),
          flush=True)
    for prec in PRECISIONS:
        r = rc.make_recipe(prec, "cuda")
        for m in (1, 8, 17, 64):
            check(f"{prec} linear vs fp32 at M={m} (relative error)",
                  lambda: f"{rc.linear_check(r, 'cuda', 4096, 11008, m):.4f}")
    check("hidden syncs", hidden_syncs)
    check("w8a8-o3 M=1 call", o3_call)
    check("profiler region device time", annotation)
    check("microbench event timing", event_timing)
    check("nvml", nvml)
    print("PREFLIGHT", "FAILED: " + ", ".join(failures) if failures else "OK", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
