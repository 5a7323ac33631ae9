"""Property tests: more bandwidth or FLOPS never slows anything; a longer output never makes a request faster;
times are finite and positive over random valid inputs."""
import math

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import planner
from planner import catalog
from planner.api import model_plan
from planner.predict import evaluate, gpu_table
from planner.quant import load_precision

GPUS = ["h100-sxm", "a100-sxm-80gb", "l40s", "l4", "mi300x", "t4", "h200-sxm"]
LLMS = ["llama-2-7b", "llama-3-8b", "mistral-7b", "mixtral-8x7b", "llama-3-70b", "medgemma-4b-text"]
PRECS = ["fp16", "w8a8", "w4a16", "w8a16", "w8a8-o1"]
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _scaled(acc, bw=1.0, flops=1.0):
    pk = {k: (v * flops if v else v) for k, v in acc.peak_dense.model_dump().items()}
    mem = acc.memory.model_copy(update={"bandwidth_gb_s": acc.memory.bandwidth_gb_s * bw})
    return acc.model_copy(update={"peak_dense": acc.peak_dense.model_copy(update=pk), "memory": mem})


def _e2e(acc, model, prec, b, i, o, engine="optimized"):
    cal = catalog.load_calibration()
    plan = model_plan(model, prec)
    t = gpu_table([acc], load_precision(prec), cal)
    vt = gpu_table([acc], plan.vision_precision, cal) if plan.vision_precision else None
    r = evaluate(plan, t, vt, np.zeros(1, dtype=int), b, i, o, 1, 1, cal.engines[engine], cal)
    return r["e2e_s"][0]


@SETTINGS
@given(gpu=st.sampled_from(GPUS), model=st.sampled_from(LLMS + ["vit-b16", "densenet-121", "r2gengpt"]),
       prec=st.sampled_from(PRECS), b=st.integers(1, 256), i=st.integers(1, 4096), o=st.integers(1, 512),
       bw=st.floats(1.0, 4.0), fl=st.floats(1.0, 4.0), engine=st.sampled_from(["optimized", "compiled", "eager"]))
def test_more_bandwidth_or_flops_never_slower(gpu, model, prec, b, i, o, bw, fl, engine):
    acc = catalog.load_gpu(gpu)
    base = _e2e(acc, model, prec, b, i, o, engine)
    assert _e2e(_scaled(acc, bw=bw), model, prec, b, i, o, engine) <= base * (1 + 1e-12)
    assert _e2e(_scaled(acc, flops=fl), model, prec, b, i, o, engine) <= base * (1 + 1e-12)


@SETTINGS
@given(gpu=st.sampled_from(GPUS), model=st.sampled_from(LLMS), prec=st.sampled_from(PRECS),
       b=st.integers(1, 128), i=st.integers(1, 8192), o=st.integers(1, 1024), extra=st.integers(1, 1024))
def test_longer_output_never_faster(gpu, model, prec, b, i, o, extra):
    r1 = planner.estimate(gpu, model, prec, b, i, o)
    r2 = planner.estimate(gpu, model, prec, b, i, o + extra)
    assert r2["e2e_s"] >= r1["e2e_s"]
    assert r2["energy_j"] >= r1["energy_j"] * (1 - 1e-9)


@SETTINGS
@given(gpu=st.sampled_from(planner.list_gpus()), model=st.sampled_from(planner.list_models()),
       prec=st.sampled_from(["fp32", "bf16", "fp16", "fp8", "w8a8", "w4a16", "llm-int8"]),
       b=st.integers(1, 1024), i=st.integers(1, 32768), o=st.integers(1, 4096), tp=st.sampled_from([1, 2, 4, 8]))
def test_finite_positive_or_clear_refusal(gpu, model, prec, b, i, o, tp):
    try:
        r = planner.estimate(gpu, model, prec, b, i, o, tp=tp)
    except planner.PlannerError as e:
        msg = str(e)
        assert "not supported" in msg or "GPUs per node" in msg
        return
    for k, v in r.items():
        if isinstance(v, float):
            assert math.isfinite(v), k
    assert r["e2e_s"] > 0 and r["memory_gb_per_gpu"] > 0 and r["avg_power_w"] > 0
