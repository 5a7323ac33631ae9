"""The fixed cost of an eager framework's small ops: what a norm, a rotary embedding, an activation, an embedding
lookup or a decode step's attention costs beyond its work, measured on this device.

Eager torch runs each of these cost-model ops as several aten ops (an RMSNorm with its residual add, RoPE's
slices, negation, concatenation and multiplies), each paying dispatch and, in a decode step whose GEMVs have just
streamed hundreds of megabytes of weights through the caches, cold instruction and data caches: on this project's
CPU a decode step's norm took ~0.3 ms where its hot-loop time is 15 us. The roofline's one launch per op misses
that, so the profile measures it: a tiny decoder (the measurement backend's own DecoderModel, so the very same
code paths) runs decode steps with the cache flushed before each, and each small op's time per call, whose work
is negligible at these sizes, is its fixed cost. The roofline adds it per call (``EngineEff.op_overhead_s``) in
place of the launch overhead for those ops.
"""
from __future__ import annotations

import statistics

from planner.specs import ModelSpec

SMALL_OPS = ("embed", "norm", "rope", "attn_score", "mlp_act")
_TINY = {"id": "eager-overhead-probe", "name": "tiny decoder for eager op overheads", "category": "llm",
         "config_source": "planner.measure.eager_ops",
         "arch": {"kind": "decoder", "n_layers": 2, "d_model": 64, "n_heads": 2, "n_kv_heads": 1, "d_ff": 128,
                  "vocab_size": 128, "gated_mlp": True, "norm": "rmsnorm", "position": "rope", "max_context": 64}}


def bench_eager_ops(device: str, flusher, reps: int, steps: int = 4, prompt: int = 8) -> dict:
    """Fixed seconds per call of each op of SMALL_OPS, cold (cache flushed before each decode step).

    The profiler attributes each op's own time but adds its own cost per aten op, and misses the Python glue
    between regions (views, splits, module calls) that an unprofiled step also pays; so the profiled per-call
    minima are scaled by one factor, (unprofiled step - profiled GEMM regions) / profiled small-op regions, that
    makes the small ops and the glue add up to the unprofiled step. Returns ``per_call_s`` (what the roofline
    uses) with the figures it came from."""
    import torch

    from planner.measure.harness import OP_NAMES
    from planner.measure.models import STEP_REGION, build_model, region
    from planner.measure.profiler import sync, time_phase
    spec = ModelSpec.model_validate(_TINY)
    model, _, _ = build_model(spec, None, torch.float32, device)
    model.allocate(1, prompt + steps + 1)
    gen = torch.Generator(device="cpu").manual_seed(0)
    tokens = torch.randint(0, spec.arch.vocab_size, (1, prompt), generator=gen).to(device)
    nxt = tokens[:, :1]
    with torch.no_grad():
        model(tokens, 0)

        def decode_rep(flush):
            for k in range(steps):
                flush()
                with region(STEP_REGION):
                    model(nxt, prompt + k)
                    sync(device)
        t = time_phase("decode", decode_rep, steps=steps, reps=reps, warmup=1, device=device, flusher=flusher,
                       op_names=OP_NAMES)
    per_rep, calls = {}, {}
    for name in {r.name for r in t.rows}:
        rows = [r for r in t.rows if r.name == name]       # norm: the layers' and the final one
        per_rep[name] = [sum(r.times[i] for r in rows) for i in range(len(rows[0].times))]
        calls[name] = sum(r.instances for r in rows)
    steps_s = t.step_unprofiled or t.step_times
    out = {}
    for stat, f in (("", min), ("_median", statistics.median)):
        profiled = {k: f(v) for k, v in per_rep.items()}
        small = sum(v for k, v in profiled.items() if k in SMALL_OPS)
        gemms = sum(v for k, v in profiled.items() if k not in SMALL_OPS)
        step = f(steps_s)
        factor = min(max((step - gemms) / small, 0.25), 4.0) if small > 0 else 1.0
        out[f"per_call{stat}_s"] = {k: profiled[k] / calls[k] * factor for k in SMALL_OPS if calls.get(k)}
        out[f"profiled_per_call{stat}_s"] = {k: profiled[k] / calls[k] for k in SMALL_OPS if calls.get(k)}
        out[f"unprofiled_step{stat}_s"], out[f"profiled_gemm_regions{stat}_s"] = step, gemms
        out[f"glue_factor{stat}"] = factor
    return {**out, "model": _TINY["arch"], "steps": steps, "reps": reps,
            "note": "tiny decoder, fp32, batch 1, cache flushed before each decode step; per_call_s = profiled "
                    "per-call minimum x glue_factor, per_call_median_s the same at medians (planner.measure.eager_ops)"}
