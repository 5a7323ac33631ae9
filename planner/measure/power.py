"""Board power on NVIDIA GPUs through NVML (nvidia-ml-py), sampled in a thread during a run.

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
