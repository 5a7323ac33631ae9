"""Empirical efficiency factors: what fraction of a datasheet peak real kernels reach, and fixed overheads.

They live in data/calibration/efficiency.yaml, apart from the spec files (which hold datasheet figures
only), and are fitted by benchmarks/fit_efficiency.py from published measurements. Each factor is a
physical quantity with bounds (a fraction of peak lies in (0, 1]; an overhead is microseconds), never a
per-row fudge. Which values were fitted and which are assumptions is recorded in the file itself.
"""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

ENGINES = ("optimized", "compiled", "eager")
Engine = Literal["optimized", "compiled", "eager"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EngineEff(_Strict):
    """A serving engine's achievable fractions and overheads (TensorRT-LLM/vLLM-class, torch.compile, eager)."""
    gemm_compute_frac: float = Field(gt=0, le=1)     # dense GEMM, of the dtype's dense peak
    conv_compute_frac: float = Field(gt=0, le=1)     # convolutions (implicit GEMM)
    attn_compute_frac: float = Field(gt=0, le=1)     # fused attention
    vector_compute_frac: float = Field(gt=0, le=1)   # non-tensor work, of the fp32 vector peak
    # pooling windows (outputs x kernel area) per second, of the fp32 vector peak: eager CPU pooling kernels run
    # far below the elementwise rate (a device profile measures it); None: the vector fraction
    pool_compute_frac: float | None = Field(None, gt=0, le=1)
    mem_frac: float = Field(gt=0, le=1)              # streaming DRAM bandwidth, of the datasheet figure
    link_frac: float = Field(gt=0, le=1)             # all-reduce bus bandwidth, of the per-direction link
    launch_overhead_s: float = Field(ge=0, le=1e-3)  # per kernel (CUDA graphs make it small)
    step_overhead_s: float = Field(ge=0, le=0.1)     # per forward pass: scheduling, sampling, host work
    request_overhead_s: float = Field(0.0, ge=0, le=1.0)  # once per request batch: setup before the first token
    overlap_p: float = Field(ge=1, le=64)            # t = (tc^p + tm^p)^(1/p): p -> inf is the pure roofline
    fused_elementwise_frac: float = Field(ge=0, le=1)  # share of fusible elementwise traffic folded away
    # (op name, seconds per call): an eager framework's fixed cost of a small op (several aten ops, cold caches
    # after the weight streams of a decode step), in place of launches x launch_overhead_s for that op; a device
    # profile measures it (planner.measure.eager_ops); LLM phases and vision transformer blocks' small ops
    # (OpTemplate.eager_small); empty in the published calibration
    op_overhead_s: tuple[tuple[str, float], ...] = ()
    # (op name, factor): an eager framework runs a small op as several unfused kernels (an RMSNorm's square, mean,
    # rsqrt and multiplies), moving several times the bytes of the fused kernel the cost model counts; the op's
    # compute and memory times are multiplied by the measured ratio (planner.measure.eager_ops.body_scales);
    # LLM phases only; empty in the published calibration
    op_body_scale: tuple[tuple[str, float], ...] = ()
    # (FLOPs per weight byte, fraction of the dtype's GEMM peak): convolutions' measured rate by intensity, in
    # place of conv_compute_frac x the GEMM small-M table (a batch-1 7x7 conv is a 49-row GEMM, and conv
    # kernels lose rate there differently from GEMMs); ascending, interpolated in log intensity, clamped at the
    # ends. A device profile measures it (planner.measure.microbench.bench_conv); empty in the published one
    conv_eff_by_intensity: tuple[tuple[float, float], ...] = ()
    # (FLOPs per activation byte, fraction of the attention dtype's GEMM peak): a vision encoder's attention
    # (bidirectional, windowed or not) by keys attended per query, C / bytes per element in the cost model's
    # counting; in place of attn_compute_frac, which a causal LLM prefill sets, for attention outside the LLM
    # phases (a 49-token Swin window runs far below a long causal prefill per FLOP). Same rules as the conv
    # table; a device profile measures it (planner.measure.microbench.bench_encoder_attention)
    encoder_attn_eff_by_context: tuple[tuple[float, float], ...] = ()

    @field_validator("conv_eff_by_intensity", "encoder_attn_eff_by_context")
    @classmethod
    def _rate_table(cls, v, info):
        xs = [x for x, _ in v]
        if any(x <= 0 or not 0 < e <= 1 for x, e in v) or xs != sorted(set(xs)):
            raise ValueError(f"{info.field_name} needs ascending distinct intensities > 0 with fractions in (0, 1]")
        return v

    @field_validator("op_body_scale")
    @classmethod
    def _body_scales(cls, v):
        if any(not 0.1 <= f <= 100 for _, f in v) or len({n for n, _ in v}) != len(v):
            raise ValueError("op_body_scale needs distinct op names with factors in [0.1, 100]")
        return v

    @field_validator("op_overhead_s")
    @classmethod
    def _overheads(cls, v):
        if any(not 0 <= t <= 0.1 for _, t in v) or len({n for n, _ in v}) != len(v):
            raise ValueError("op_overhead_s needs distinct op names with seconds in [0, 0.1]")
        return v


class FamilyEff(_Strict):
    compute_scale: float = Field(gt=0, le=1.5)
    mem_scale: float = Field(gt=0, le=1.5)
    basis: str                                        # "fitted on rows ..." or "assumption: ..."


class PrecisionEff(_Strict):
    gemm_scale: float = Field(gt=0, le=1.5)          # GEMM compute efficiency vs the plain GEMM of the same engine
    mem_scale: float = Field(1.0, gt=0, le=1.5)      # GEMM weight-streaming efficiency vs the plain GEMM
    overlap_p: float | None = Field(None, ge=1, le=64)  # this scheme's GEMM compute/memory overlap (None: engine's)
    # measured compute efficiency of this scheme's GEMMs by FLOPs per weight byte (2M / bytes per weight):
    # small-M GEMMs leave register tiles half empty (and M=1 runs a GEMV kernel); ascending intensities,
    # interpolated in log intensity, clamped at the ends. A device profile measures it; the published
    # calibration has no rows to fit it (empty: efficiency 1 at every M)
    eff_by_intensity: tuple[tuple[float, float], ...] = ()
    # fixed seconds per call of this scheme's GEMM kernel beyond the launch: the intercept of its GEMV time over
    # the bytes it streams (fbgemm's int8 GEMV: ~1 ms per call on this project's CPU); a device profile measures
    # it (planner.measure.microbench.gemv_line); 0 in the published calibration
    call_overhead_s: float = Field(0.0, ge=0, le=0.1)
    basis: str

    @field_validator("eff_by_intensity")
    @classmethod
    def _ascending(cls, v):
        xs = [x for x, _ in v]
        if any(x <= 0 for x in xs) or xs != sorted(set(xs)) or any(not 0 < e <= 2 for _, e in v):
            raise ValueError("eff_by_intensity needs ascending positive intensities and efficiencies in (0, 2]")
        return v


class PowerModel(_Strict):
    """Board power = idle + (TDP - idle) * min(1, compute_weight*u_compute + memory_weight*u_memory)."""
    compute_weight: float = Field(ge=0, le=2)
    memory_weight: float = Field(ge=0, le=2)
    basis: str


class MemoryReserve(_Strict):
    fixed_gb: float = Field(ge=0)                    # CUDA context, workspaces
    frac: float = Field(ge=0, lt=1)                  # allocator fragmentation, engine pools
    basis: str


class Calibration(_Strict):
    description: str
    fitted_by: str
    fitted_on: str
    fit_mdape_pct: float | None = None           # in-sample, on the rows the factors were fitted to
    crossval_mdape_pct: float | None = None      # leave-one-source-family-out (benchmarks/crossval.py)
    fitted_parameters: list[str]
    engines: dict[Engine, EngineEff]
    families: dict[str, FamilyEff]
    precisions: dict[str, PrecisionEff]
    power: PowerModel
    memory_reserve: MemoryReserve
    link_latency_s: float = Field(ge=0, le=1e-3)
    vector_fallback_ratio: float = Field(gt=0, le=1)  # vector rate / bf16 tensor rate where fp32 is unpublished

    def family(self, name: str) -> FamilyEff:
        return self.families.get(name) or self.families["default"]

    def precision(self, pid: str) -> PrecisionEff:
        base = "w8a8" if pid.startswith("w8a8") else pid        # O1-O3 and the CPU forms share w8a8's GEMMs
        return self.precisions.get(pid) or self.precisions.get(base) or self.precisions["default"]
