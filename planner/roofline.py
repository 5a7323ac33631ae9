"""Pure roofline: op templates x accelerator arrays -> op times, vectorised over N configurations.

Each op takes the larger of its compute time (FLOPs at the achievable fraction of its own dtype's dense
peak) and its memory time (bytes at the achievable fraction of DRAM bandwidth), combined as
``(tc^p + tm^p)^(1/p)``: p -> infinity is Williams et al.'s roofline max; a finite p (fitted) says that
kernels whose compute and memory times are close reach neither peak. Kernel launches add a fixed cost.
Tensor-parallel all-reduces move ``2(n-1)/n * bytes`` over the per-direction link (ring all-reduce,
Patarasuk & Yuan 2009) plus ``2*log2(n)`` link latencies (the tree/one-shot algorithms NCCL and custom
all-reduces use for the small messages of inference).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from planner.efficiency import EngineEff, PrecisionEff
from planner.ops import N_MONO, SEQ_CTX, TOK_CTX, OpTemplate, expert_coverage, monomials

ROLE_GEMM, ROLE_ATTN, ROLE_VEC, ROLE_COMM = range(4)
BOUNDS = np.array(["compute", "memory", "overhead", "interconnect"])
# a device profile measures the eager small ops' per-call cost and body factor on a decoder's own code (RMSNorm
# with its residual add, RoPE, SiLU gate): they apply to the LLM phases, not to a vision encoder's or CNN's ops
LLM_PHASES = ("prefill", "decode")


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


_NEUTRAL = PrecisionEff(gemm_scale=1.0, basis="neutral")
_KIND_FRAC = {"gemm": 0, "conv": 1, "attention": 2, "vector": 3, "comm": 3, "pool": 4}


def compile_ops(ops: list[OpTemplate], attn_dtype: str) -> CompiledOps:
    def stack(attr):
        return np.array([getattr(o, attr) * o.count for o in ops]).reshape(len(ops), N_MONO)

    def role(o: OpTemplate) -> int:
        if o.kind == "comm":
            return ROLE_COMM
        if o.kind in ("vector", "pool"):
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


def split_by_context(ops: list[OpTemplate]) -> tuple[list[OpTemplate], list[OpTemplate]]:
    """(ops independent of the context C, ops that depend on it). Exact: op times add up."""
    def depends(o: OpTemplate) -> bool:
        return o.window is not None or any(float(abs(getattr(o, f)[TOK_CTX]) + abs(getattr(o, f)[SEQ_CTX])) > 0
                                           for f in ("flops", "vflops", "weight_bytes", "act_bytes", "kv_bytes"))
    return [o for o in ops if not depends(o)], [o for o in ops if depends(o)]


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
                   context, tp, link_latency_s: float, step_overhead: bool = True,
                   prec16: PrecisionEff | None = None) -> PhaseResult:
    """Times of every op over configurations given as arrays that broadcast together (batch, new_tokens,
    context, tp and the hardware arrays): a sweep passes one axis per swept variable, so each phase is
    computed only over the variables it depends on. Op arrays have the ops as their leading axis.

    ``prec`` holds the efficiencies of the precision's own GEMMs; ``prec16`` those of the weight GEMMs a scheme
    keeps in its attention dtype (lm_head, LLM.int8()'s outlier GEMM): a w8a8 model's 16-bit head streams its
    weights like a 16-bit GEMM, not like an int8 one (None: neutral factors)."""
    shape = np.broadcast_shapes(*(np.shape(x) for x in (batch, new_tokens, context, tp, hw.bw, hw.link_bw)))
    b, s, ctx, tp = (np.broadcast_to(np.asarray(x, dtype=float), shape) for x in (batch, new_tokens, context, tp))
    ones = (1,) * len(shape)

    def col(v):                                   # per-op vector -> broadcastable over configurations
        return np.asarray(v).reshape((-1,) + ones)

    def cfg(v):                                   # per-configuration array -> broadcastable over ops
        return np.broadcast_to(np.asarray(v, dtype=float), shape)[None]

    m = monomials(b, s, ctx)
    dot = lambda coef, mm: np.tensordot(coef, mm, axes=(1, 0))  # noqa: E731
    flops, vflops, w, a, kv = (dot(x, m) for x in (c.flops, c.vflops, c.weight, c.act, c.kv))
    for row, win in c.windows:                    # sliding window caps the context these ops attend
        mw = monomials(b, s, np.minimum(ctx, win))
        for arr, coef in ((flops, c.flops), (vflops, c.vflops), (a, c.act), (kv, c.kv)):
            arr[row] = dot(coef[row:row + 1], mw)[0]
    for row, moe in c.moes:                       # weights of the experts the batch actually touches
        w[row] = w[row] * expert_coverage(moe, b * s)

    comm = col(c.role == ROLE_COMM)
    shard = np.where(col(c.sharded), 1.0 / cfg(tp), 1.0)
    flops, vflops, w, kv = flops * shard, vflops * shard, w * shard, kv * shard
    a = np.where(comm, a, a * shard)
    # fused elementwise work runs in a neighbour's epilogue: no DRAM round trip, no launch, hidden ALU time
    unfused = col(np.where(c.fusible, 1.0 - eng.fused_elementwise_frac, 1.0))
    byts = (w + a + kv) * unfused
    vflops = vflops * unfused

    gemm_peak, attn_peak, vec_peak, bw = (cfg(x) for x in (hw.gemm_peak, hw.attn_peak, hw.vec_peak, hw.bw))
    role = col(c.role)
    peaks = np.where(role == ROLE_GEMM, gemm_peak, np.where(role == ROLE_ATTN, attn_peak,
                                                            np.where(role == ROLE_VEC, vec_peak, 1.0)))
    pool_frac = eng.pool_compute_frac or eng.vector_compute_frac
    kind_frac = np.array([eng.gemm_compute_frac, eng.conv_compute_frac, eng.attn_compute_frac,
                          eng.vector_compute_frac, pool_frac])[c.kind_frac]
    is_gemm = c.role == ROLE_GEMM
    kept = (c.role == ROLE_ATTN) & (c.kind_frac <= 1)   # weight GEMMs/convs kept in the attention dtype
    p16 = prec16 or _NEUTRAL

    def per_op(field: str, other) -> np.ndarray:
        def val(x):
            v = getattr(x, field)
            return other if v is None else v
        return np.where(is_gemm, val(prec), np.where(kept, val(p16), other)).astype(float)

    # small-M GEMMs reach a lower compute rate (register tiles half empty, M=1 runs a GEMV kernel): a device
    # profile measures the efficiency by FLOPs per weight byte (2M / bytes per weight)
    m_eff = 1.0                                   # no table (the published calibration): no array work
    is_conv = c.kind_frac == 1
    conv_table = bool(eng.conv_eff_by_intensity) and bool(is_conv.any())
    for mask, pe in ((is_gemm & ~is_conv, prec), (kept & ~is_conv, p16)) if conv_table else \
            ((is_gemm, prec), (kept, p16)):
        if pe.eff_by_intensity and mask.any():
            if np.isscalar(m_eff):
                m_eff = np.ones(flops.shape)
            xs, es = (np.array(v, dtype=float) for v in zip(*pe.eff_by_intensity))
            rows = np.flatnonzero(mask)
            fr, wr = flops[rows], w[rows]
            e = np.interp(np.log(np.maximum(fr / np.where(wr > 0, wr, 1.0), 1e-30)), np.log(xs), es)
            m_eff[rows] = np.where((wr > 0) & (fr > 0), e, 1.0)
    frac = np.minimum(col(per_op("gemm_scale", 1.0) * c.scale * kind_frac) * cfg(hw.compute_scale), 1.0) * m_eff
    if conv_table:                                # convolutions at their measured rate for their intensity
        xs, es = (np.array(v, dtype=float) for v in zip(*eng.conv_eff_by_intensity))
        rows = np.flatnonzero(is_conv)
        fr, wr = flops[rows], w[rows]
        e = np.where((wr > 0) & (fr > 0),
                     np.interp(np.log(np.maximum(fr / np.where(wr > 0, wr, 1.0), 1e-30)), np.log(xs), es),
                     eng.conv_compute_frac)
        frac = np.array(np.broadcast_to(frac, flops.shape))
        frac[rows] = np.minimum(col(per_op("gemm_scale", 1.0) * c.scale)[rows] * e * cfg(hw.compute_scale), 1.0)
    enc_attn = (c.kind_frac == 2) & np.array([o.phase not in LLM_PHASES for o in c.ops]) \
        if eng.encoder_attn_eff_by_context else None
    if enc_attn is not None and enc_attn.any():   # vision encoders' attention by keys attended (a device profile)
        xs, es = (np.array(v, dtype=float) for v in zip(*eng.encoder_attn_eff_by_context))
        rows = np.flatnonzero(enc_attn)
        fr, ar = flops[rows], a[rows]
        e = np.where((ar > 0) & (fr > 0),
                     np.interp(np.log(np.maximum(fr / np.where(ar > 0, ar, 1.0), 1e-30)), np.log(xs), es),
                     eng.attn_compute_frac)
        frac = np.array(np.broadcast_to(frac, flops.shape))
        frac[rows] = np.minimum(col(per_op("gemm_scale", 1.0) * c.scale)[rows] * e * cfg(hw.compute_scale), 1.0)
    vec_rate = vec_peak * col(np.minimum(np.where(c.kind_frac == 4, pool_frac, eng.vector_compute_frac), 1.0)) \
        * cfg(hw.compute_scale)
    tc = np.where(comm, 0.0, flops / (peaks * frac) + vflops / vec_rate)
    mem_rate = bw * np.minimum(eng.mem_frac * cfg(hw.mem_scale) * col(per_op("mem_scale", 1.0)), 1.0)
    tm = np.where(comm, 0.0, byts / mem_rate)
    if eng.op_body_scale:                         # measured eager bodies of small ops (several unfused kernels)
        scale = dict(eng.op_body_scale)
        f = col(np.array([scale.get(o.name, 1.0) if o.phase in LLM_PHASES else 1.0 for o in c.ops]))
        tc, tm = tc * f, tm * f
    hi, lo = np.maximum(tc, tm), np.minimum(tc, tm)
    # a device profile may measure a scheme's own GEMM overlap (small-M CPU GEMMs overlap poorly)
    p = col(per_op("overlap_p", eng.overlap_p))
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(hi > 0, hi * (1.0 + (lo / hi) ** p) ** (1.0 / p), 0.0)
    # a measured scheme adds its kernel's fixed cost per call (the intercept of its GEMV line) to each launch of
    # its GEMMs; convolutions run other kernels, whose fixed costs are in their measured rate (0.7 ms of an fp32
    # GEMV intercept on each of DenseNet-121's 120 convs made a 80 ms batch-1 pass 122 ms)
    overhead = col(c.launches) * unfused * (eng.launch_overhead_s
                                            + col(np.where(is_conv, 0.0, per_op("call_overhead_s", 0.0))))
    if eng.op_overhead_s:                         # measured fixed cost per call of an eager framework's small ops
        fixed = dict(eng.op_overhead_s)
        small = [o.phase in LLM_PHASES or o.eager_small for o in c.ops]
        keys = [o.overhead_key or o.name for o in c.ops]
        own = np.array([k in fixed and sm for k, sm in zip(keys, small)])
        per_call = np.array([fixed.get(k, 0.0) * o.count if sm else 0.0 for k, o, sm in zip(keys, c.ops, small)])
        overhead = np.where(col(own), col(per_call), overhead)
    overhead = np.broadcast_to(overhead, t.shape)

    tpc = cfg(tp)
    ring = np.where(tpc > 1, 2.0 * (tpc - 1.0) / tpc, 0.0)
    # small all-reduces are latency-bound: tree/one-shot algorithms take ~2*log2(n) link latencies
    comm_t = a * ring / (cfg(hw.link_bw) * eng.link_frac) \
        + 2.0 * np.log2(np.maximum(tpc, 1.0)) * link_latency_s * col(c.launches)
    t = np.where(comm, comm_t, t + overhead)
    overhead = np.where(comm, 0.0, overhead)
    tc_show = np.where(comm, comm_t, tc)

    peak_c = np.where(comm, 0.0, flops / peaks).sum(0) + (vflops / vec_peak).sum(0)
    peak_m = np.where(comm, 0.0, byts / bw).sum(0)
    return PhaseResult(time=t.sum(0) + (eng.step_overhead_s if step_overhead else 0.0), op_time=t,
                       compute_time=tc_show, memory_time=tm, overhead_time=overhead, flops=flops, vflops=vflops,
                       bytes=byts, weight_bytes=w * unfused, act_bytes=a * unfused, kv_bytes=kv * unfused,
                       peak_time_c=peak_c, peak_time_m=peak_m)
