"""Pure roofline: op templates x accelerator arrays -> op times, vectorised over N configurations.

Each op takes the larger of its compute time (FLOPs at the achievable fraction of its own dtype's dense
peak) and its memory time (bytes at the achievable fraction of DRAM bandwidth), combined as
``(tc^p + tm^p)^(1/p)``: p -> infinity is Williams et al.'s roofline max; a finite p (fitted) says that
kernels whose compute and memory times are close reach neither peak. Kernel launches add a fixed cost.
Tensor-parallel all-reduces move ``2(n-1)/n * bytes`` over the per-direction link (ring all-reduce,
Patarasuk & Yuan 2009) plus ``2(n-1)`` link latencies.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from planner.efficiency import EngineEff, PrecisionEff
from planner.ops import N_MONO, OpTemplate, expert_coverage, monomials

ROLE_GEMM, ROLE_ATTN, ROLE_VEC, ROLE_COMM = range(4)
BOUNDS = np.array(["compute", "memory", "overhead", "interconnect"])


@dataclass(frozen=True)
class CompiledOps:
    """A model phase's op templates as stacked coefficient matrices (one row per op)."""
    ops: tuple[OpTemplate, ...]
    flops: np.ndarray      # (n, 5) already multiplied by count
    vflops: np.ndarray
    weight: np.ndarray
    act: np.ndarray
    kv: np.ndarray
    launches: np.ndarray   # (n,) kernels, count included
    sharded: np.ndarray    # (n,) bool
    fusible: np.ndarray
    role: np.ndarray       # (n,) ROLE_*
    kind_frac: np.ndarray  # (n,) index into (gemm, conv, attn, vector)
    scale: np.ndarray      # (n,) op-specific compute scale (quantized epilogues)
    windows: tuple         # ((row, window), ...)
    moes: tuple            # ((row, (k, e)), ...)


_KIND_FRAC = {"gemm": 0, "conv": 1, "attention": 2, "vector": 3, "comm": 3}


def compile_ops(ops: list[OpTemplate], attn_dtype: str) -> CompiledOps:
    def stack(attr):
        return np.array([getattr(o, attr) * o.count for o in ops]).reshape(len(ops), N_MONO)

    def role(o: OpTemplate) -> int:
        if o.kind == "comm":
            return ROLE_COMM
        if o.kind == "vector":
            return ROLE_VEC
        if o.kind == "attention" or (o.dtype is not None and o.dtype == attn_dtype):
            return ROLE_ATTN
        return ROLE_GEMM

    return CompiledOps(
        ops=tuple(ops), flops=stack("flops"), vflops=stack("vflops"), weight=stack("weight_bytes"),
        act=stack("act_bytes"), kv=stack("kv_bytes"),
        launches=np.array([o.launches * o.count for o in ops], dtype=float),
        sharded=np.array([o.sharded for o in ops]), fusible=np.array([o.fusible for o in ops]),
        role=np.array([role(o) for o in ops]), kind_frac=np.array([_KIND_FRAC[o.kind] for o in ops]),
        scale=np.array([o.compute_scale for o in ops], dtype=float),
        windows=tuple((i, o.window) for i, o in enumerate(ops) if o.window),
        moes=tuple((i, o.moe) for i, o in enumerate(ops) if o.moe))


@dataclass(frozen=True)
class HwArrays:
    """Per-configuration hardware figures (SI), already resolved for one precision."""
    gemm_peak: np.ndarray
    attn_peak: np.ndarray
    vec_peak: np.ndarray
    bw: np.ndarray
    link_bw: np.ndarray      # per-direction bytes/s available to a tp-group all-reduce
    compute_scale: np.ndarray
    mem_scale: np.ndarray


@dataclass(frozen=True)
class PhaseResult:
    time: np.ndarray         # (N,) seconds for the whole forward step, step overhead included
    op_time: np.ndarray      # (n, N)
    compute_time: np.ndarray
    memory_time: np.ndarray
    overhead_time: np.ndarray
    flops: np.ndarray        # (n, N) per GPU
    vflops: np.ndarray
    bytes: np.ndarray
    weight_bytes: np.ndarray
    act_bytes: np.ndarray
    kv_bytes: np.ndarray
    peak_time_c: np.ndarray  # (N,) time at 100 % of peak compute (for utilisation)
    peak_time_m: np.ndarray

    def bound(self) -> np.ndarray:
        """Which limit each op sits on: compute, memory, overhead (launches) or interconnect."""
        stacked = np.stack([self.compute_time, self.memory_time, self.overhead_time])
        out = BOUNDS[np.argmax(stacked, axis=0)]
        return out


def evaluate_phase(c: CompiledOps, hw: HwArrays, eng: EngineEff, prec: PrecisionEff, batch, new_tokens,
                   context, tp, link_latency_s: float) -> PhaseResult:
    """Times of every op for N configurations given as arrays (or scalars) batch, new_tokens, context, tp."""
    b, s, ctx, tp = (np.asarray(x, dtype=float) for x in (batch, new_tokens, context, tp))
    b, s, ctx, tp = (np.atleast_1d(x) for x in np.broadcast_arrays(b, s, ctx, tp, hw.bw)[:4])
    m = monomials(b, s, ctx)
    flops, vflops, w, a, kv = (x @ m for x in (c.flops, c.vflops, c.weight, c.act, c.kv))
    for row, win in c.windows:                    # sliding window caps the context these ops attend
        mw = monomials(b, s, np.minimum(ctx, win))
        for arr, coef in ((flops, c.flops), (vflops, c.vflops), (a, c.act), (kv, c.kv)):
            arr[row] = coef[row] @ mw
    for row, moe in c.moes:                       # weights of the experts the batch actually touches
        w[row] = w[row] * expert_coverage(moe, b * s)

    comm = c.role == ROLE_COMM
    shard = np.where(c.sharded[:, None], 1.0 / tp[None, :], 1.0)
    flops, vflops, w, kv = flops * shard, vflops * shard, w * shard, kv * shard
    a = np.where(comm[:, None], a, a * shard)
    unfused = np.where(c.fusible, 1.0 - eng.fused_elementwise_frac, 1.0)[:, None]
    byts = (w + a + kv) * unfused

    peaks = np.stack([hw.gemm_peak, hw.attn_peak, hw.vec_peak, np.ones_like(hw.bw)])[c.role]   # (n, N)
    kind_frac = np.array([eng.gemm_compute_frac, eng.conv_compute_frac, eng.attn_compute_frac,
                          eng.vector_compute_frac])[c.kind_frac]
    quant_scale = np.where(c.role == ROLE_GEMM, prec.gemm_scale, 1.0) * c.scale * kind_frac
    frac = np.minimum(quant_scale[:, None] * hw.compute_scale[None, :], 1.0)
    vec_rate = hw.vec_peak * min(eng.vector_compute_frac, 1.0) * hw.compute_scale
    tc = np.where(comm[:, None], 0.0, flops / (peaks * frac) + vflops / vec_rate)
    mem_rate = hw.bw[None, :] * np.minimum(eng.mem_frac * hw.mem_scale[None, :]
                                           * np.where(c.role == ROLE_GEMM, prec.mem_scale, 1.0)[:, None], 1.0)
    tm = np.where(comm[:, None], 0.0, byts / mem_rate)
    hi, lo = np.maximum(tc, tm), np.minimum(tc, tm)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(hi > 0, hi * (1.0 + (lo / hi) ** eng.overlap_p) ** (1.0 / eng.overlap_p), 0.0)
    overhead = (c.launches * unfused[:, 0])[:, None] * eng.launch_overhead_s * np.ones_like(t)

    ring = np.where(tp > 1, 2.0 * (tp - 1.0) / tp, 0.0)
    comm_t = a * ring / (hw.link_bw * eng.link_frac) + np.where(tp > 1, 2.0 * (tp - 1.0), 0.0) * link_latency_s \
        * (c.launches[:, None])
    t = np.where(comm[:, None], comm_t, t + overhead)
    overhead = np.where(comm[:, None], 0.0, overhead)
    tc_show = np.where(comm[:, None], comm_t, tc)

    peak_c = (flops / peaks).sum(0, where=~comm[:, None]) + (vflops / hw.vec_peak).sum(0)
    peak_m = (byts / hw.bw).sum(0, where=~comm[:, None])
    return PhaseResult(time=t.sum(0) + eng.step_overhead_s, op_time=t, compute_time=tc_show, memory_time=tm,
                       overhead_time=overhead, flops=flops, vflops=vflops, bytes=byts, weight_bytes=w * unfused,
                       act_bytes=a * unfused, kv_bytes=kv * unfused, peak_time_c=peak_c, peak_time_m=peak_m)
