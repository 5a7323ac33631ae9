"""Board power and energy from utilisation (pure).

Power of one GPU during a phase = idle + (TDP - idle) * min(1, cw * u_compute + mw * u_memory), where
u_compute is the fraction of dense peak FLOP/s the phase achieves and u_memory the fraction of DRAM
bandwidth. Compute-saturated kernels draw about TDP; streaming, memory-bound decode draws less (the weights
cw, mw live in data/calibration/efficiency.yaml with their basis; NVML measurements refine them).
"""
from __future__ import annotations

import numpy as np


def phase_power(idle_w, tdp_w, peak_time_c, peak_time_m, time, compute_weight: float, memory_weight: float):
    """Average board power (W) of one GPU over a phase of duration ``time``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        u_c = np.where(time > 0, peak_time_c / time, 0.0)
        u_m = np.where(time > 0, peak_time_m / time, 0.0)
    load = np.clip(compute_weight * u_c + memory_weight * u_m, 0.0, 1.0)
    return idle_w + (tdp_w - idle_w) * load


def energy_j(power_w, time_s, n_gpus):
    return power_w * time_s * n_gpus
