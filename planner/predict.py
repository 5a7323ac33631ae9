"""Evaluate a compiled model on arrays of configurations: the one numeric path behind estimate() and sweep().

Everything is numpy over N configurations (accelerator, batch, input and output length, tp, pp), so a single
estimate and a sweep of a million configurations give the same numbers by construction.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from planner.arch.pipeline import ModelPlan
from planner.efficiency import Calibration, EngineEff
from planner.energy import phase_power
from planner.memory import largest_batch, largest_context, memory_per_gpu
from planner.parallel import allreduce_bandwidth
from planner.quant import Precision, resolve_dtype
from planner.roofline import HwArrays, PhaseResult, evaluate_phase
from planner.specs import Accelerator
from planner.units import GB

# Gauss-Legendre nodes on [0, 1]: the mean decode-step time over a context that grows linearly is a smooth
# function of the step, integrated exactly for polynomials up to degree 7 by 4 nodes.
_GL_X, _GL_W = np.polynomial.legendre.leggauss(4)
GL_NODES, GL_WEIGHTS = (_GL_X + 1) / 2, _GL_W / 2


@dataclass(frozen=True)
class GpuTable:
    """Per-accelerator scalars for one precision, indexed by a gpu index array."""
    accs: tuple[Accelerator, ...]
    gemm_peak: np.ndarray
    attn_peak: np.ndarray
    vec_peak: np.ndarray
    bw: np.ndarray
    capacity: np.ndarray
    tdp: np.ndarray
    idle: np.ndarray
    pcie: np.ndarray
    max_tp: np.ndarray
    compute_scale: np.ndarray
    mem_scale: np.ndarray
    supported: np.ndarray
    reason: tuple[str, ...]


def gpu_table(accs: list[Accelerator], p: Precision, cal: Calibration) -> GpuTable:
    g, at, v, ok, why = [], [], [], [], []
    for acc in accs:
        try:
            g.append(acc.peak_dense.flops(resolve_dtype(acc, p.gemm_dtype, p, "gemm")))
            at.append(acc.peak_dense.flops(resolve_dtype(acc, p.attn_dtype, p, "attn")))
            ok.append(True)
            why.append("")
        except ValueError as e:
            g.append(1.0)
            at.append(1.0)
            ok.append(False)
            why.append(str(e))
        pk = acc.peak_dense
        v.append(pk.flops("fp32") or cal.vector_fallback_ratio * (pk.flops("bf16") or pk.flops("fp16") or g[-1]))
    fam = [cal.family(a.family) for a in accs]
    arr = lambda xs: np.array(xs, dtype=float)  # noqa: E731
    return GpuTable(tuple(accs), arr(g), arr(at), arr(v), arr([a.bandwidth_bytes_s for a in accs]),
                    arr([a.memory_bytes for a in accs]), arr([a.power.tdp_w for a in accs]),
                    arr([a.power.idle_w for a in accs]), arr([a.interconnect.pcie_gb_s_per_direction * GB for a in accs]),
                    arr([a.interconnect.max_gpus_per_node for a in accs]), arr([f.compute_scale for f in fam]),
                    arr([f.mem_scale for f in fam]), np.array(ok), tuple(why))


def hw_arrays(t: GpuTable, gi, tp) -> HwArrays:
    """Hardware arrays indexed by ``gi`` (any shape); the link bandwidth broadcasts over gi and tp."""
    gi = np.asarray(gi)
    tp = np.asarray(tp, dtype=float)
    tps = np.unique(tp)
    link = np.array([[allreduce_bandwidth(a, int(n)) for n in tps] for a in t.accs])   # (gpus, distinct tp)
    link_bw = link[gi, np.searchsorted(tps, tp)]
    return HwArrays(t.gemm_peak[gi], t.attn_peak[gi], t.vec_peak[gi], t.bw[gi], link_bw, t.compute_scale[gi],
                    t.mem_scale[gi])


def _power(t: GpuTable, gi, r: PhaseResult, cal: Calibration):
    return phase_power(t.idle[gi], t.tdp[gi], r.peak_time_c, r.peak_time_m, r.time,
                       cal.power.compute_weight, cal.power.memory_weight)


def _decode_step(plan: ModelPlan, hw, table, gi, eng, prec, cal, seqs, ctx, tp, pp):
    """Mean decode-step time and energy/time product over the Gauss-Legendre context nodes ``ctx``(list).
    Context-free ops are evaluated once (they broadcast over fewer variables); attention per node."""
    p16 = cal.precision(plan.precision.attn_dtype)
    rs = evaluate_phase(plan.decode_static, hw, eng, prec, seqs, 1.0, 0.0, tp, cal.link_latency_s, prec16=p16)
    p2p = (pp - 1) * seqs * plan.llm.d_model * plan.precision.act_bytes / table.pcie[gi]
    t_mean, pc_mean, pm_mean = 0.0, 0.0, 0.0
    for c, w in zip(ctx, GL_WEIGHTS):
        rc = evaluate_phase(plan.decode_ctx, hw, eng, prec, seqs, 1.0, c, tp, cal.link_latency_s, step_overhead=False,
                            prec16=p16)
        t_mean = t_mean + w * rc.time
        pc_mean = pc_mean + w * rc.peak_time_c
        pm_mean = pm_mean + w * rc.peak_time_m
    t_step = rs.time + t_mean + p2p
    power = phase_power(table.idle[gi], table.tdp[gi], rs.peak_time_c + pc_mean, rs.peak_time_m + pm_mean, t_step,
                        cal.power.compute_weight, cal.power.memory_weight)
    return t_step, power


def evaluate(plan: ModelPlan, table: GpuTable, vtable: GpuTable | None, gi, batch, input_len, output_len, tp, pp,
             eng: EngineEff, cal: Calibration) -> dict[str, np.ndarray]:
    """All predict keys as arrays. Inputs are arrays that broadcast together (a sweep gives each variable its
    own axis); outputs broadcast to the common shape. ``vtable``: the table for the vision precision."""
    gi = np.asarray(gi)
    b, i_len, o_len, tp, pp = (np.asarray(x, dtype=float) for x in (batch, input_len, output_len, tp, pp))
    shape = np.broadcast_shapes(gi.shape, b.shape, i_len.shape, o_len.shape, tp.shape, pp.shape)
    prec = cal.precision(plan.precision.id)
    n_gpu = tp * pp
    out: dict[str, np.ndarray] = {}
    t_vis, e_vis = 0.0, 0.0
    if plan.vision is not None:
        vt = vtable or table
        hv = hw_arrays(vt, gi, np.ones_like(tp))
        images = b * plan.images_per_request / n_gpu            # images are spread over the replica's GPUs
        rv = evaluate_phase(plan.vision, hv, eng, cal.precision(plan.vision_precision.id), images,
                            plan.vision_tokens, plan.vision_tokens, 1.0, cal.link_latency_s,
                            prec16=cal.precision(plan.vision_precision.attn_dtype))
        t_vis = rv.time
        e_vis = _power(vt, gi, rv, cal) * t_vis * n_gpu
    if plan.decode is None:                                      # image model
        lat = t_vis
        out.update(latency_s=lat, images_per_s=b / lat, e2e_s=lat, energy_j=e_vis, avg_power_w=e_vis / (lat * n_gpu))
        sequences, context, pre_tokens = b, 0.0, b * plan.vision_tokens
    else:
        hw = hw_arrays(table, gi, tp)
        i_tot = i_len + plan.image_tokens
        seqs = b * plan.beams
        rp = evaluate_phase(plan.prefill, hw, eng, prec, b, i_tot, (i_tot + 1) / 2, tp, cal.link_latency_s,
                            prec16=cal.precision(plan.precision.attn_dtype))
        t_pre = rp.time + (pp - 1) * b * i_tot * plan.llm.d_model * plan.precision.act_bytes / table.pcie[gi]
        steps = np.maximum(o_len - 1, 0)
        nodes = [i_tot + 0.5 + x * np.maximum(steps, 1) for x in GL_NODES]
        t_step, p_step = _decode_step(plan, hw, table, gi, eng, prec, cal, seqs, nodes, tp, pp)
        ttft = t_vis + t_pre + eng.request_overhead_s
        e2e = ttft + steps * t_step
        energy = e_vis + _power(table, gi, rp, cal) * t_pre * n_gpu + steps * p_step * t_step * n_gpu
        out.update(ttft_s=ttft, tpot_s=t_step, e2e_s=e2e, output_tokens_per_s=b * o_len / e2e,
                   output_tokens_per_s_per_user=o_len / e2e, prefill_s=t_pre, vision_s=t_vis,
                   energy_j=energy, avg_power_w=energy / (e2e * n_gpu), energy_j_per_token=energy / (b * o_len))
        sequences, context, pre_tokens = seqs, i_tot + o_len, b * i_tot
    cap = table.capacity[gi]
    res = cal.memory_reserve
    mem = memory_per_gpu(plan.memory, sequences, context, pre_tokens, tp, pp, res.fixed_gb * GB, res.frac, cap)
    fits_mem = mem["total"] <= cap
    ok = table.supported[gi] & (tp <= table.max_tp[gi])
    out.update(memory_gb_per_gpu=mem["total"] / GB, weights_gb_per_gpu=mem["weights"] / GB,
               kv_cache_gb_per_gpu=mem["kv_cache"] / GB, activations_gb_per_gpu=mem["activations"] / GB,
               fits=fits_mem & ok, supported=ok, n_gpus=n_gpu)
    per_seq_prefill = pre_tokens / np.maximum(b, 1)
    out["max_batch"] = largest_batch(plan.memory, np.maximum(context, 1), per_seq_prefill, tp, pp, res.fixed_gb * GB,
                                     res.frac, cap) / (plan.beams if plan.decode is not None else 1)
    if plan.decode is not None:
        out["max_context"] = np.minimum(largest_context(plan.memory, sequences, tp, pp, res.fixed_gb * GB, res.frac,
                                                        cap), plan.llm.max_context)
    return {k: np.broadcast_to(v, shape) for k, v in out.items()}
