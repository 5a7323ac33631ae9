"""The fixed cost of an eager framework's small ops: what a norm, a rotary embedding, an activation, an embedding
lookup or a decode step's attention costs beyond its work, and what their bodies cost beyond the fused kernels
the cost model counts, measured on this device.

Eager torch runs each of these cost-model ops as several aten ops (an RMSNorm with its residual add, RoPE's
slices, negation, concatenation and multiplies), each paying dispatch and, in a decode step whose GEMVs have just
streamed hundreds of megabytes of weights through the caches, cold instruction and data caches: on this project's
CPU a decode step's norm took ~0.3 ms where its hot-loop time is 15 us. The roofline's one launch per op misses
that, so the profile measures it: a decoder at Llama-2-7B's widths with a small MLP and vocabulary (the
measurement backend's own DecoderModel, so the very same code paths; its QKV and output projections stream 270 MB
per step as a real layer's do) runs decode steps with the cache flushed before each, and each small op's time per
call, whose work is negligible at batch 1, is its fixed cost. (A 64-wide model's small ops, with nothing
streaming between them, ran 1.6-4x faster per call than a Llama-2-7B layer's.) The roofline adds it per call
(``EngineEff.op_overhead_s``) in place of the launch overhead for those ops.
"""
from __future__ import annotations

import statistics

from planner.specs import ModelSpec

SMALL_OPS = ("embed", "norm", "rope", "attn_score", "mlp_act")
_DECODER = {"kind": "decoder", "gated_mlp": True, "norm": "rmsnorm", "position": "rope", "max_context": 64}
# the per-call costs: Llama-2-7B's widths and heads, an MLP and vocabulary too small to matter
WIDE = {**_DECODER, "n_layers": 1, "d_model": 4096, "n_heads": 32, "n_kv_heads": 32, "d_ff": 128, "vocab_size": 128}
# the glue factor: a model whose GEMM regions are too short to blur the difference it is made of
TINY = {**_DECODER, "n_layers": 2, "d_model": 64, "n_heads": 2, "n_kv_heads": 1, "d_ff": 128, "vocab_size": 128}


def _decode_regions(arch: dict, device: str, flusher, reps: int, steps: int, prompt: int):
    """Profiled decode steps of a random-weight decoder: ({op: seconds per repetition}, {op: calls per
    repetition}, unprofiled step times)."""
    import torch

    from planner.measure.harness import OP_NAMES
    from planner.measure.models import STEP_REGION, build_model, region
    from planner.measure.profiler import sync, time_phase
    spec = ModelSpec.model_validate({"id": "eager-overhead-probe", "name": "decoder for eager op overheads",
                                     "category": "llm", "config_source": "planner.measure.eager_ops", "arch": arch})
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
    return per_rep, calls, t.step_unprofiled or t.step_times


def bench_eager_ops(device: str, flusher, reps: int, steps: int = 4, prompt: int = 8, quick: bool = False) -> dict:
    """Fixed seconds per call of each op of SMALL_OPS, cold (cache flushed before each decode step, weights
    streaming between the ops as in a real layer).

    The profiler attributes each op's own time but adds its own cost per aten op, and misses the Python glue
    between regions (views, splits, module calls) that an unprofiled step also pays; so the profiled per-call
    times are scaled by one factor, (unprofiled step - profiled GEMM regions) / profiled small-op regions, that
    makes the small ops and the glue add up to the unprofiled step. It is taken on a tiny model: between the wide
    model's 270 MB weight streams the difference drowns in their noise (it read 0.5-2.0 there, 0.7-0.9 on the tiny
    one). Returns ``per_call_s`` (what the roofline uses) with the figures it came from; ``quick`` times the tiny
    model only."""
    wide = TINY if quick else WIDE
    per_rep, calls, _ = _decode_regions(wide, device, flusher, reps, steps, prompt)
    t_per_rep, t_calls, t_steps = _decode_regions(TINY, device, flusher, reps, steps, prompt)
    out = {}
    for stat, f in (("", min), ("_median", statistics.median)):
        tiny = {k: f(v) for k, v in t_per_rep.items()}
        small = sum(v for k, v in tiny.items() if k in SMALL_OPS)
        gemms = sum(v for k, v in tiny.items() if k not in SMALL_OPS)
        step = f(t_steps)
        factor = min(max((step - gemms) / small, 0.25), 4.0) if small > 0 else 1.0
        profiled = {k: f(v) / calls[k] for k, v in per_rep.items() if k in SMALL_OPS and calls.get(k)}
        out[f"per_call{stat}_s"] = {k: v * factor for k, v in profiled.items()}
        out[f"profiled_per_call{stat}_s"] = profiled
        out[f"tiny_unprofiled_step{stat}_s"], out[f"tiny_profiled_gemm_regions{stat}_s"] = step, gemms
        out[f"tiny_profiled_small_regions{stat}_s"] = small
        out[f"glue_factor{stat}"] = factor
    return {**out, "model": wide, "glue_model": TINY, "steps": steps, "reps": reps,
            "note": "decoders in fp32, batch 1, cache flushed before each decode step; per_call_s = the wide "
                    "model's profiled per-call minimum x the tiny model's glue_factor, per_call_median_s the same "
                    "at medians (planner.measure.eager_ops)"}


# ------------------------------------------------------------------------------------ small ops' bodies

BODY_OPS = ("norm", "rope", "mlp_act")
# Llama-2-7B's widths (the GEMM sweep's shapes): the small ops' traffic at the sizes the validated runs have
BODY_ARCH = {"kind": "decoder", "n_layers": 1, "d_model": 4096, "n_heads": 32, "n_kv_heads": 32, "d_ff": 11008,
             "vocab_size": 32000, "gated_mlp": True, "norm": "rmsnorm", "position": "rope", "max_context": 4096}
BODY_TOKENS = (128, 1024)
QUICK_BODY_ARCH = {**BODY_ARCH, "d_model": 256, "n_heads": 4, "n_kv_heads": 4, "d_ff": 688, "max_context": 512}
QUICK_BODY_TOKENS = (16, 128)


def body_spec(arch: dict) -> ModelSpec:
    return ModelSpec.model_validate({"id": "eager-body-probe", "name": "decoder widths for eager op bodies",
                                     "category": "llm", "config_source": "planner.measure.eager_ops", "arch": arch})


def bench_eager_bodies(device: str, reps: int, quick: bool = False) -> dict:
    """Seconds per call of the small ops' bodies as the measurement backend runs them (the very functions of
    planner.measure.models, on tensors shaped as a prefill's: q and k as transposed views of the fused QKV
    output, gate and up as halves of the fused up projection), fp32, at two token counts.

    Eager torch runs an RMSNorm as several aten kernels (square, mean, rsqrt, two multiplies) and RoPE as
    slices, a negation, a concatenation and multiplies: several times the traffic of the fused kernel the cost
    model counts (on this project's CPU a 1024-token RMSNorm with its residual add took 10 ms, the fused
    kernel's bytes at the measured bandwidth 3 ms). The difference of the two token counts divides out each
    call's fixed cost; ``body_scales`` turns it into a factor on the roofline's body time of that op.
    Inputs are not flushed: in a forward pass each op reads what the op before it has just written."""
    import torch

    from planner.measure.microbench import _Sync
    from planner.measure.models import Norm, mlp_act, residual_norm, rope_qk, rope_tables
    arch = QUICK_BODY_ARCH if quick else BODY_ARCH
    tokens = QUICK_BODY_TOKENS if quick else BODY_TOKENS
    d, dff, hd = arch["d_model"], arch["d_ff"], arch["d_model"] // arch["n_heads"]
    sync = _Sync(device)
    clock = sync.clock
    norm = Norm(d, "rmsnorm", torch.float32, device)
    rope = rope_tables(max(tokens), hd, device)
    out: dict = {"seconds": {k: [] for k in BODY_OPS}, "median_s": {k: [] for k in BODY_OPS}}
    gen = torch.Generator(device="cpu").manual_seed(0)
    with torch.no_grad():
        for m in tokens:
            h, delta = (torch.randn(1, m, d, generator=gen).to(device) for _ in range(2))
            qkv = torch.randn(1, m, 3 * d, generator=gen).to(device)
            q, k, _ = (t.view(1, m, arch["n_heads"], hd).transpose(1, 2) for t in qkv.split([d, d, d], dim=-1))
            u = torch.randn(1, m, 2 * dff, generator=gen).to(device)
            calls = {"norm": lambda: residual_norm(h, delta, norm), "rope": lambda: rope_qk(q, k, rope, 0),
                     "mlp_act": lambda: mlp_act(u, True)}
            for name, fn in calls.items():
                fn()
                sync()
                ts = []
                for _ in range(reps):
                    t0 = clock()
                    fn()
                    sync()
                    ts.append(clock() - t0)
                out["seconds"][name].append(min(ts))
                out["median_s"][name].append(statistics.median(ts))
    return {**out, "tokens": list(tokens), "arch": arch, "reps": reps, "dtype": "fp32", "timer": sync.timer,
            "note": "prefill-shaped inputs, batch 1, not flushed (each op reads what its producer just wrote); "
                    "seconds: minimum of reps per token count, median_s: their median (planner.measure.eager_ops)"}


def body_scales(bench: dict, roofline_body_s) -> tuple[tuple[str, float], ...]:
    """(op, factor) per op of ``bench`` (a profile's eager_op_bodies, at one statistic): its measured time
    per added token over the roofline's, ``roofline_body_s(op, tokens)`` being the roofline's body time (op time
    less overheads) of one call at ``tokens`` prefill tokens. Clipped to [0.25, 50]; an op whose measured time
    does not grow with the tokens (noise at quick sizes) gets none."""
    (m1, m2), out = bench["tokens"], []
    for name, ts in sorted(bench["seconds"].items()):
        meas = ts[1] - ts[0]
        pred = roofline_body_s(name, m2) - roofline_body_s(name, m1)
        if meas > 0 and pred > 0:
            out.append((name, min(max(meas / pred, 0.25), 50.0)))
    return tuple(out)


# ------------------------------------------------------------------------------------- CNN small ops

CNN_SMALL_OPS = ("norm", "act", "pool", "concat", "add")
# DenseNet-121 and ResNet-50 with their layer counts but widths and images too small for the bodies to matter
# (growth 4 / 8 initial features, 32 px): every batch norm, ReLU, pool, concatenation and residual add runs
# through the backend's own modules, so what each costs per call is the eager framework's fixed cost in a
# network's own sequence (a DenseNet-121 at growth 4 ran its 121 batch norms at ~75 us per profiled call on this
# project's CPU, where the roofline's one launch is 5 us; DenseNet-121's batch-1 pass came out 20-35 % slow)
CNN_PROBES = (("densenet-121", {"growth_rate": 4, "init_features": 8, "image_size": 32}),
              ("resnet-50", {"init_features": 8, "image_size": 32}))
QUICK_CNN_PROBES = (("densenet-121", {"growth_rate": 2, "init_features": 4, "image_size": 32, "blocks": [2, 2, 2, 2]}),
                    ("resnet-50", {"init_features": 4, "image_size": 32, "blocks": [1, 1, 1, 1]}))


def _cnn_regions(model_id: str, changes: dict, device: str, flusher, reps: int):
    """Profiled passes of a tiny-width catalog CNN: ({op: seconds per repetition}, {op: calls}, unprofiled
    pass times)."""
    import torch

    from planner import catalog
    from planner.measure.harness import OP_NAMES
    from planner.measure.models import STEP_REGION, build_model, region
    from planner.measure.profiler import sync, time_phase
    base = catalog.load_model(model_id)
    spec = ModelSpec.model_validate({"id": f"{model_id}-tiny", "name": f"{model_id} at tiny widths",
                                     "category": "vision", "config_source": "planner.measure.eager_ops",
                                     "arch": {**base.arch.model_dump(), **changes}})
    model, _, _ = build_model(spec, None, torch.float32, device)
    a = spec.arch
    images = torch.randn(1, a.channels, a.image_size, a.image_size, generator=torch.Generator().manual_seed(0))
    images = images.to(device)
    with torch.no_grad():
        def rep(flush):
            flush()
            with region(STEP_REGION):
                model(images)
                sync(device)
        t = time_phase("vision", rep, steps=1, reps=reps, warmup=1, device=device, flusher=flusher,
                       op_names=OP_NAMES)
    per_rep, calls = {}, {}
    for name in {r.name for r in t.rows}:
        rows = [r for r in t.rows if r.name == name]
        per_rep[name] = [sum(r.times[i] for r in rows) for i in range(len(rows[0].times))]
        calls[name] = sum(r.instances for r in rows)
    return per_rep, calls, t.step_unprofiled or t.step_times


def bench_cnn_ops(device: str, flusher, reps: int, quick: bool = False) -> dict:
    """Fixed seconds per call of a CNN's small ops (CNN_SMALL_OPS), keyed ``cnn.<op>``: DenseNet-121 and ResNet-50
    at tiny widths (CNN_PROBES) run passes with the cache flushed before each, and each op's profiled time per
    call is scaled by the network's glue factor, (unprofiled pass - profiled conv and fc regions) / profiled small
    op regions (the profiler's own cost per aten op is most of a tiny op's profiled time: 31 ms profiled against
    20 ms unprofiled for the tiny DenseNet here), as bench_eager_ops does for a decoder. An op in both networks
    gets the call-weighted mean. ``per_call_s`` at minima, ``per_call_median_s`` at medians."""
    out: dict = {"per_call_s": {}, "per_call_median_s": {}, "networks": {}}
    for model_id, changes in (QUICK_CNN_PROBES if quick else CNN_PROBES):
        per_rep, calls, steps = _cnn_regions(model_id, changes, device, flusher, reps)
        net: dict = {"changes": changes, "calls": {k: calls[k] for k in per_rep if k in CNN_SMALL_OPS}}
        for stat, f in (("", min), ("_median", statistics.median)):
            t = {k: f(v) for k, v in per_rep.items()}
            small = sum(v for k, v in t.items() if k in CNN_SMALL_OPS)
            rest = sum(v for k, v in t.items() if k not in CNN_SMALL_OPS)
            factor = min(max((f(steps) - rest) / small, 0.25), 4.0) if small > 0 else 1.0
            net[f"glue_factor{stat}"] = factor
            net[f"profiled_per_call{stat}_s"] = {k: t[k] / calls[k] for k in net["calls"] if calls[k]}
        out["networks"][model_id] = net
    for stat in ("", "_median"):
        for op in CNN_SMALL_OPS:
            have = [(n["calls"][op], n[f"profiled_per_call{stat}_s"][op] * n[f"glue_factor{stat}"])
                    for n in out["networks"].values() if n["calls"].get(op)]
            if have:
                out[f"per_call{stat}_s"][f"cnn.{op}"] = sum(c * v for c, v in have) / sum(c for c, _ in have)
    out.update(reps=reps, note="fp32, batch 1, cache flushed before each pass; per_call_s: a network's profiled "
                               "per-call minimum x its glue factor, call-weighted over the networks "
                               "(planner.measure.eager_ops.bench_cnn_ops)")
    return out
