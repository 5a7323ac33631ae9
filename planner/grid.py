"""Vectorised sweep over accelerators x models x precisions x batches x lengths x parallel degrees."""
from __future__ import annotations

import numpy as np
import pandas as pd

from planner import catalog
from planner.errors import check_positive_int
from planner.predict import evaluate, gpu_table
from planner.quant import load_precision

_COLUMNS = ("ttft_s", "tpot_s", "e2e_s", "output_tokens_per_s", "latency_s", "images_per_s", "memory_gb_per_gpu",
            "fits", "supported", "avg_power_w", "energy_j", "energy_j_per_token", "max_batch", "n_gpus")


def _ints(name: str, values) -> np.ndarray:
    return np.array([check_positive_int(name, v) for v in values], dtype=float)


def run_sweep(gpus, models, precisions, batches, input_lens, output_lens, tps, pps, engine) -> pd.DataFrame:
    from planner.api import _engine, model_plan
    eng = _engine(engine)
    cal = catalog.load_calibration()
    accs = [catalog.load_gpu(g) for g in gpus]
    b, i, o, t, q = (_ints(n, v) for n, v in (("batch", batches), ("input_len", input_lens),
                                              ("output_len", output_lens), ("tp", tps), ("pp", pps)))
    # one axis per variable: each phase is evaluated only over the variables it depends on, then broadcast
    axes = [np.arange(len(accs)), b, i, o, t, q]
    shaped = [x.reshape([-1 if k == j else 1 for k in range(6)]) for j, x in enumerate(axes)]
    gi, gb, gin, gout, gtp, gpp = (x.ravel() for x in np.meshgrid(*axes, indexing="ij"))
    frames = []
    for m in models:
        for pid in precisions:
            p = load_precision(pid)
            plan = model_plan(m, p.id)
            table = gpu_table(accs, p, cal)
            vtable = gpu_table(accs, plan.vision_precision, cal) if plan.vision_precision is not None else None
            with np.errstate(all="ignore"):
                r = {k: v.ravel() for k, v in evaluate(plan, table, vtable, *shaped, eng, cal).items()}
            ok = r["supported"] if vtable is None else r["supported"] & vtable.supported[gi]
            cols = {"gpu": np.asarray(gpus, dtype=object)[gi], "model": m, "precision": p.id, "batch": gb.astype(int),
                    "input_len": gin.astype(int), "output_len": gout.astype(int), "tp": gtp.astype(int),
                    "pp": gpp.astype(int)}
            for k in _COLUMNS:
                if k in r:
                    v = r[k]
                    cols[k] = (v & ok) if v.dtype == bool else np.where(ok, v, np.nan)
            cols["supported"] = ok
            price = np.array([a.price.cloud_usd_per_gpu_hour or np.nan for a in accs])[gi]
            cols["cloud_usd_per_gpu_hour"] = price
            rate = cols.get("output_tokens_per_s", cols.get("images_per_s"))
            with np.errstate(all="ignore"):   # $ per 1M output tokens (LLMs) or per 1,000 images (vision)
                per = 1e6 if "output_tokens_per_s" in cols else 1e3
                cols["usd_per_million_output_tokens" if per == 1e6 else "usd_per_1000_images"] = \
                    price * cols["n_gpus"] / 3600.0 / rate * per
            frames.append(pd.DataFrame(cols))
    return pd.concat(frames, ignore_index=True)
