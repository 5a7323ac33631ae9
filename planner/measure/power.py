"""Board power on NVIDIA GPUs through NVML (nvidia-ml-py): sampled in a thread over a whole run (PowerSampler), and
per phase from the board's energy counter read around the phase's unprofiled repetitions (EnergyCounter).

NVML's power reading is a one-second average on Hopper and newer boards (NVML API reference,
nvmlDeviceGetPowerUsage), and a run's window holds idle seconds (model build, the profiler's post-processing):
its mean says little about a phase. The energy counter (nvmlDeviceGetTotalEnergyConsumption, mJ since the driver
loaded, Volta and newer) differenced around the timed repetitions gives each phase's mean power.

Untested here (no GPU in CI); every NVML call is guarded so a machine without NVML gets ``None``s, not errors.
"""
from __future__ import annotations

import threading
import time


def _handle(device: str):
    import pynvml
    pynvml.nvmlInit()
    idx = int(device.split(":")[1]) if ":" in device else 0
    return pynvml, pynvml.nvmlDeviceGetHandleByIndex(idx)


def nvml_info(device: str) -> dict:
    try:
        nv, h = _handle(device)
        drv = nv.nvmlSystemGetDriverVersion()
        return {"driver": drv.decode() if isinstance(drv, bytes) else drv,
                "power_limit_w": nv.nvmlDeviceGetPowerManagementLimit(h) / 1000.0,
                "idle_power_w": nv.nvmlDeviceGetPowerUsage(h) / 1000.0}
    except Exception as e:  # noqa: BLE001 - NVML missing or not an NVIDIA device: say so in the metadata
        return {"driver": None, "nvml_error": f"{type(e).__name__}: {e}"}


class PowerSampler:
    """``with PowerSampler(device) as p: ...`` then ``p.summary()``: mean/max watts and energy over the block."""

    def __init__(self, device: str, interval_s: float = 0.05):
        self.device, self.interval = device, interval_s
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = None
        self.error = None

    def __enter__(self):
        if not self.device.startswith("cuda"):
            return self
        try:
            self._nv, self._h = _handle(self.device)
        except Exception as e:  # noqa: BLE001
            self.error = f"{type(e).__name__}: {e}"
            return self
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            try:
                self.samples.append((time.perf_counter(), self._nv.nvmlDeviceGetPowerUsage(self._h) / 1000.0))
            except Exception as e:  # noqa: BLE001
                self.error = f"{type(e).__name__}: {e}"
                return
            self._stop.wait(self.interval)

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)

    def summary(self) -> dict:
        if len(self.samples) < 2:
            return {"power_samples": len(self.samples), "power_error": self.error}
        w = [s[1] for s in self.samples]
        dur = self.samples[-1][0] - self.samples[0][0]
        energy = sum((b[0] - a[0]) * (a[1] + b[1]) / 2 for a, b in zip(self.samples, self.samples[1:]))
        return {"power_samples": len(w), "avg_power_w": energy / dur if dur else sum(w) / len(w),
                "max_power_w": max(w), "energy_j": energy, "power_window_s": dur}


class EnergyCounter:
    """``counter()``: the board's cumulative energy in joules, or None (no NVML, not CUDA, or an old board)."""

    def __init__(self, device: str):
        self.error = None
        self._nv = self._h = None
        if not device.startswith("cuda"):
            return
        try:
            self._nv, self._h = _handle(device)
            self._nv.nvmlDeviceGetTotalEnergyConsumption(self._h)
        except Exception as e:  # noqa: BLE001 - NVML missing or no counter: phases carry no power
            self.error, self._nv = f"{type(e).__name__}: {e}", None

    def __call__(self) -> float | None:
        if self._nv is None:
            return None
        try:
            return self._nv.nvmlDeviceGetTotalEnergyConsumption(self._h) / 1000.0
        except Exception as e:  # noqa: BLE001
            self.error, self._nv = f"{type(e).__name__}: {e}", None
            return None


def measured_phase_power(energy_j: list[float | None], wall_s: list[float]) -> dict | None:
    """Mean board power over a phase's repetitions: their energy over their wall time (None without readings)."""
    pairs = [(e, t) for e, t in zip(energy_j, wall_s) if e is not None and t > 0]
    if not pairs:
        return None
    energy, wall = sum(e for e, _ in pairs), sum(t for _, t in pairs)
    return {"power_w": energy / wall, "energy_j": energy, "wall_s": wall, "repetitions": len(pairs),
            "basis": "NVML total-energy counter differenced around the phase's unprofiled repetitions (their "
                     "cache flushes included)"}
