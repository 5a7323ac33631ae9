"""The public API: estimate() for one configuration, sweep() for a grid, roofline_table() for per-op detail.

This module is the edge between files (catalog) and the pure core (arch, roofline, predict). The CLI, the
dashboard and notebooks call these functions and compute nothing of their own.
"""
from __future__ import annotations

import functools
import math

import numpy as np
import pandas as pd

from planner import catalog
from planner.arch.pipeline import ModelPlan, compile_model
from planner.efficiency import ENGINES
from planner.energy import phase_power
from planner.errors import PlannerError, check_positive_int
from planner.parallel import check_parallel
from planner.predict import evaluate, gpu_table, hw_arrays
from planner.quant import check_supported, load_precision
from planner.roofline import ROLE_COMM, evaluate_phase
from planner.units import GB, HOUR

PREDICT_KEYS_LLM = ("ttft_s", "tpot_s", "e2e_s", "output_tokens_per_s", "memory_gb_per_gpu", "fits",
                    "avg_power_w", "energy_j")
PREDICT_KEYS_IMAGE = ("latency_s", "images_per_s", "memory_gb_per_gpu", "fits", "avg_power_w", "energy_j")
DEFAULT_INPUT_LEN, DEFAULT_OUTPUT_LEN = 512, 128


@functools.lru_cache(maxsize=256)
def model_plan(model_id: str, precision_id: str) -> ModelPlan:
    spec = catalog.load_model(model_id)
    p = load_precision(precision_id)
    parts = {}
    if spec.arch.kind == "pipeline":
        parts = {spec.arch.vision: catalog.load_model(spec.arch.vision), spec.arch.llm: catalog.load_model(spec.arch.llm)}
    return compile_model(spec, p, parts)


def _engine(engine: str):
    if engine not in ENGINES:
        raise PlannerError(f"engine must be one of {', '.join(ENGINES)}, got '{engine}'")
    return catalog.load_calibration().engines[engine]


def _lengths(plan: ModelPlan, input_len, output_len) -> tuple[int, int]:
    if plan.decode is None:
        return 0, 0
    i = plan.default_input_len if input_len is None else input_len
    o = plan.default_output_len if output_len is None else output_len
    i = DEFAULT_INPUT_LEN if i is None else i
    o = DEFAULT_OUTPUT_LEN if o is None else o
    return check_positive_int("input_len", i), check_positive_int("output_len", o)


def estimate(gpu: str, model: str, precision: str = "bf16", batch: int = 1, input_len: int | None = None,
             output_len: int | None = None, tp: int = 1, pp: int = 1, replicas: int = 1,
             engine: str = "optimized", detail: bool = True) -> dict:
    """Predict one configuration. LLM keys: ttft_s, tpot_s, e2e_s, output_tokens_per_s (one replica of tp*pp
    GPUs), memory_gb_per_gpu, fits, avg_power_w (per GPU), energy_j (whole request batch); image models:
    latency_s and images_per_s. Bad input raises PlannerError with a one-line message."""
    acc = catalog.load_gpu(gpu)
    batch = check_positive_int("batch", batch)
    tp, pp, replicas = (check_positive_int(n, v) for n, v in (("tp", tp), ("pp", pp), ("replicas", replicas)))
    p = load_precision(precision)
    check_supported(acc, p)
    check_parallel(acc, tp, pp)
    eng = _engine(engine)
    plan = model_plan(model, p.id)
    if plan.vision_precision is not None:
        check_supported(acc, plan.vision_precision)
    i, o = _lengths(plan, input_len, output_len)
    cal = catalog.load_calibration()
    table = gpu_table([acc], p, cal)
    vtable = gpu_table([acc], plan.vision_precision, cal) if plan.vision_precision is not None else None
    raw = evaluate(plan, table, vtable, np.zeros(1, dtype=int), batch, i, o, tp, pp, eng, cal)
    r = {k: (bool(v[0]) if v.dtype == bool else float(v[0])) for k, v in raw.items()}
    r.update(gpu=gpu, model=model, precision=p.id, engine=engine, batch=batch, tp=tp, pp=pp, replicas=replicas,
             category=plan.category)
    if plan.decode is not None:
        r.update(input_len=i, output_len=o, image_tokens=plan.image_tokens, beams=plan.beams,
                 total_output_tokens_per_s=r["output_tokens_per_s"] * replicas)
    else:
        r["total_images_per_s"] = r["images_per_s"] * replicas
    r["max_batch"] = int(r["max_batch"])
    if "max_context" in r:
        r["max_context"] = int(r["max_context"])
    if detail:     # which bound each phase sits on (a per-op pass; the fit script skips it)
        r.update(_bounds(plan, acc, p.id, batch, i, o, tp, engine))
    r["fits_reason"] = _fits_reason(r, acc)
    r.update(_cost(r, acc))
    _check_finite(r)
    return r


def _fits_reason(r: dict, acc) -> str:
    cap = f"{acc.memory_bytes / GB:.1f} GB (the '{acc.memory.capacity_gb:g} GB' of the datasheet, read as GiB)"
    if r["fits"]:
        return f"{r['memory_gb_per_gpu']:.1f} GB of {cap} per GPU"
    return (f"needs {r['memory_gb_per_gpu']:.1f} GB per GPU (weights {r['weights_gb_per_gpu']:.1f}, KV cache "
            f"{r['kv_cache_gb_per_gpu']:.1f}, activations {r['activations_gb_per_gpu']:.1f}, runtime reserve) "
            f"but {acc.id} has {cap}; raise tp/pp, lower batch or quantize")


def _cost(r: dict, acc) -> dict:
    price = acc.price.cloud_usd_per_gpu_hour
    if price is None:
        return {"cloud_usd_per_gpu_hour": None}
    gpus_h = price * r["n_gpus"] / HOUR
    if r["category"] == "vision":
        return {"cloud_usd_per_gpu_hour": price, "usd_per_1000_images": gpus_h / r["images_per_s"] * 1000}
    return {"cloud_usd_per_gpu_hour": price, "usd_per_million_output_tokens": gpus_h / r["output_tokens_per_s"] * 1e6}


def _check_finite(r: dict) -> None:
    bad = [k for k, v in r.items() if isinstance(v, float) and not math.isfinite(v)]
    if bad:
        raise PlannerError(f"internal: non-finite result for {', '.join(bad)} (please report this configuration)")


def _bounds(plan, acc, precision, batch, i, o, tp, engine) -> dict:
    """Which limit each phase sits on (time-weighted over its ops)."""
    out = {}
    for phase in ("vision", "prefill", "decode"):
        rows = roofline_rows(plan, acc, precision, batch, i, o, tp, engine, phase)
        if rows:
            by = {}
            for row in rows:
                by[row["bound"]] = by.get(row["bound"], 0.0) + row["time_s"]
            out[f"{phase}_bound"] = max(by, key=by.get)
    return out


def _evaluate_one_phase(plan: ModelPlan, acc, precision: str, batch: int, i: int, o: int, tp: int, engine: str,
                        phase: str):
    """(phase plan, PhaseResult, tp, GpuTable, calibration) of one configuration on one accelerator, or None if
    the model lacks the phase (decode: the step at the mean context)."""
    cal = catalog.load_calibration()
    eng = cal.engines[engine]
    p = plan.precision if phase != "vision" else plan.vision_precision
    comp = {"vision": plan.vision, "prefill": plan.prefill, "decode": plan.decode}[phase]
    if comp is None:
        return None
    table = gpu_table([acc], p, cal)
    one = np.zeros(1, dtype=int)
    if phase == "vision":
        b, s, c, t = batch * plan.images_per_request / tp, plan.vision_tokens, plan.vision_tokens, 1
    elif phase == "prefill":
        s = i + plan.image_tokens
        b, c, t = batch, (s + 1) / 2, tp
    else:
        b, s, c, t = batch * plan.beams, 1, i + plan.image_tokens + max(o, 1) / 2, tp
    hw = hw_arrays(table, one, np.array([float(t)]))
    r = evaluate_phase(comp, hw, eng, cal.precision(p.id), b, s, c, t, cal.link_latency_s,
                       prec16=cal.precision(p.attn_dtype))
    return comp, r, t, table, cal


def phase_power_w(plan: ModelPlan, acc, precision: str, batch: int, i: int, o: int, tp: int, engine: str,
                  phase: str) -> float | None:
    """Predicted mean board power (W) of one GPU over one phase (planner.energy.phase_power of the phase's
    utilisation), or None if the model lacks the phase."""
    ev = _evaluate_one_phase(plan, acc, precision, batch, i, o, tp, engine, phase)
    if ev is None:
        return None
    _, r, _, table, cal = ev
    return float(phase_power(table.idle[0], table.tdp[0], r.peak_time_c[0], r.peak_time_m[0], r.time[0],
                             cal.power.compute_weight, cal.power.memory_weight))


def roofline_rows(plan: ModelPlan, acc, precision: str, batch: int, i: int, o: int, tp: int, engine: str,
                  phase: str) -> list[dict]:
    """Per-op rows of one phase (decode: the step at the mean context). Empty if the model lacks the phase."""
    ev = _evaluate_one_phase(plan, acc, precision, batch, i, o, tp, engine, phase)
    if ev is None:
        return []
    comp, r, t = ev[:3]
    bounds = r.bound()
    rows = []
    for k, op in enumerate(comp.ops):
        bound = "interconnect" if comp.role[k] == ROLE_COMM else str(bounds[k, 0])
        if comp.role[k] == ROLE_COMM and t == 1:
            continue
        fl = float(r.flops[k, 0] + r.vflops[k, 0])
        by = float(r.bytes[k, 0])
        rows.append({"phase": phase, "name": op.name, "group": op.group, "kind": op.kind, "count": op.count,
                     "flops": fl, "bytes": by, "weight_bytes": float(r.weight_bytes[k, 0]),
                     "act_bytes": float(r.act_bytes[k, 0]), "kv_bytes": float(r.kv_bytes[k, 0]),
                     "intensity": fl / by if by else float("inf"), "compute_s": float(r.compute_time[k, 0]),
                     "memory_s": float(r.memory_time[k, 0]), "overhead_s": float(r.overhead_time[k, 0]),
                     "time_s": float(r.op_time[k, 0]), "bound": bound})
    return rows


def roofline_table(gpu: str, model: str, precision: str = "bf16", batch: int = 1, input_len: int | None = None,
                   output_len: int | None = None, tp: int = 1, engine: str = "optimized",
                   phases: tuple[str, ...] = ("vision", "prefill", "decode")) -> pd.DataFrame:
    """Per-op table (FLOPs, bytes by kind, intensity, bound, time) of each phase; rows of the same op name
    and group are summed. Decode rows are one step at the mean context."""
    acc = catalog.load_gpu(gpu)
    batch = check_positive_int("batch", batch)
    tp = check_positive_int("tp", tp)
    p = load_precision(precision)
    check_supported(acc, p)
    check_parallel(acc, tp, 1)
    _engine(engine)
    plan = model_plan(model, p.id)
    i, o = _lengths(plan, input_len, output_len)
    rows = [r for ph in phases for r in roofline_rows(plan, acc, p.id, batch, i, o, tp, engine, ph)]
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    keys = ["phase", "name", "group", "kind"]
    agg = df.groupby(keys, sort=False).agg(
        count=("count", "sum"), flops=("flops", "sum"), bytes=("bytes", "sum"), weight_bytes=("weight_bytes", "sum"),
        act_bytes=("act_bytes", "sum"), kv_bytes=("kv_bytes", "sum"), compute_s=("compute_s", "sum"),
        memory_s=("memory_s", "sum"), overhead_s=("overhead_s", "sum"), time_s=("time_s", "sum")).reset_index()
    # the bound of a summed row is the bound of its slowest member
    slowest = df.sort_values("time_s").groupby(keys, sort=False)["bound"].last()
    agg = agg.join(slowest, on=keys)
    agg["intensity"] = agg["flops"] / agg["bytes"].where(agg["bytes"] > 0)
    return agg


def ridge_point(gpu: str, precision: str = "bf16") -> float:
    """FLOP per byte where the GEMM peak meets DRAM bandwidth (datasheet figures)."""
    acc = catalog.load_gpu(gpu)
    p = load_precision(precision)
    check_supported(acc, p)
    from planner.quant import resolve_dtype
    return acc.peak_dense.flops(resolve_dtype(acc, p.gemm_dtype, p, "gemm")) / acc.bandwidth_bytes_s


def sweep(gpus, models, precisions, batches, input_lens=(DEFAULT_INPUT_LEN,), output_lens=(DEFAULT_OUTPUT_LEN,),
          tps=(1,), pps=(1,), engine: str = "optimized") -> pd.DataFrame:
    """Every combination of the lists, one row each, with the predict keys as columns. Vectorised: one numpy
    evaluation per (model, precision) over all accelerators, batches, lengths and parallel degrees.
    A precision an accelerator lacks, or a tp beyond one node, gives supported=False, fits=False and NaN times."""
    from planner.grid import run_sweep
    return run_sweep(gpus, models, precisions, batches, input_lens, output_lens, tps, pps, engine)
