"""Precision schemes as data: bytes per weight/activation/KV element, the peak each op uses, and the extra
work each scheme adds. Adding a scheme is adding a row to ``PRECISIONS``, not an ``if``.

Sources for the scheme mechanics:
- SmoothQuant (Xiao et al., ICML 2023, arXiv:2211.10438) Table 3/Fig. 8: W8A8 with activation granularity
  O1 per-token dynamic, O2 per-tensor dynamic, O3 per-tensor static; latency falls from O1 to O3 because
  the coarser scale needs no per-token reduction and fuses into the preceding op.
- LLM.int8() (Dettmers et al., 2022): vector-wise int8 plus an fp16 GEMM over outlier feature columns;
  SmoothQuant reports it slower than fp16 (its Fig. 8), from the decomposition's extra kernels.
- Weight-only int8/int4 (gpt-fast, AWQ/GPTQ kernels): weights dequantized inside the GEMM; int4 stores one
  16-bit scale (and zero point) per group of ``group_size`` weights.
"""
from __future__ import annotations

from dataclasses import dataclass

from planner.errors import PlannerError, UnknownIdError
from planner.specs import Accelerator


@dataclass(frozen=True)
class Precision:
    id: str
    description: str
    weight_bytes: float          # per weight element, scales included
    act_bytes: float             # activations stored between ops
    gemm_in_bytes: float         # activation bytes a GEMM reads (quantized input where the scheme quantizes)
    kv_bytes: float              # per KV-cache element
    gemm_dtype: str              # which dense peak the GEMMs run at
    attn_dtype: str              # which peak attention (QK^T, PV) runs at
    # extra work the scheme adds per linear layer input, in passes over the activation
    quant_read_passes: float = 0.0    # extra reads of the 16-bit input (absmax reduction, quantize)
    quant_write_bytes: float = 0.0    # bytes written per element by a separate quantize kernel
    quant_launches: float = 0.0       # extra kernels per linear input
    dequant_vflops_per_weight: float = 0.0  # non-tensor work to unpack a weight (weight-only schemes)
    outlier_fraction: float = 0.0     # LLM.int8(): share of features routed through an fp16 GEMM
    gemm_scale: float = 1.0           # epilogue/kernel efficiency relative to the plain GEMM of gemm_dtype
    granularity: str | None = None

    @property
    def is_quantized(self) -> bool:
        return self.weight_bytes < 2


_W8A8 = dict(weight_bytes=1.0, act_bytes=2.0, gemm_in_bytes=1.0, kv_bytes=2.0, gemm_dtype="int8", attn_dtype="fp16")

PRECISIONS: dict[str, Precision] = {p.id: p for p in [
    Precision("fp32", "fp32 weights and activations", 4, 4, 4, 4, "fp32", "fp32"),
    Precision("tf32", "fp32 storage, TF32 tensor-core GEMMs", 4, 4, 4, 4, "tf32", "tf32"),
    Precision("fp16", "fp16 weights and activations", 2, 2, 2, 2, "fp16", "fp16"),
    Precision("bf16", "bf16 weights and activations", 2, 2, 2, 2, "bf16", "bf16"),
    # FP8 E4M3 weights and activations, per-tensor static scales fused into the producer op (TensorRT-LLM),
    # FP8 KV cache as in the TensorRT-LLM rows of published_dev.csv.
    Precision("fp8", "FP8 E4M3 W8A8, per-tensor scales, FP8 KV cache", 1.0, 2.0, 1.0, 1.0, "fp8", "bf16"),
    # SmoothQuant W8A8. Default = O3 (per-tensor static): the quantize fuses into the preceding norm.
    Precision("w8a8", "SmoothQuant W8A8 int8, per-tensor static activation scale (O3)", **_W8A8,
              granularity="per-tensor-static"),
    Precision("w8a8-o3", "SmoothQuant W8A8 int8, per-tensor static (O3)", **_W8A8, granularity="per-tensor-static"),
    Precision("w8a8-o2", "SmoothQuant W8A8 int8, per-tensor dynamic (O2): absmax over the tensor, then quantize",
              **_W8A8, quant_read_passes=2, quant_write_bytes=1, quant_launches=2, granularity="per-tensor-dynamic"),
    Precision("w8a8-o1", "SmoothQuant W8A8 int8, per-token dynamic (O1): per-row absmax, quantize, "
              "per-token dequant in the GEMM epilogue", **_W8A8, quant_read_passes=2, quant_write_bytes=1,
              quant_launches=2, gemm_scale=0.95, granularity="per-token"),
    # The CPU form of SmoothQuant O2 where no 16-bit path is dependable (the "w8a8 through fbgemm"):
    # fbgemm's dynamic quantized linear takes fp32 activations and quantizes them per tensor itself; norms,
    # attention, the KV cache and the head stay fp32. No quant op of its own: the range and quantize passes run
    # inside that kernel, whose time the device profile's int8-fbgemm sweep measures with them (it times the
    # same linear_dynamic); a separate quant op counted them twice (1 % of a 2-thread prefill here).
    Precision("w8a8-o2-f32", "SmoothQuant W8A8 int8, per-tensor dynamic (O2), fp32 activations, attention and head "
              "(the CPU form: fbgemm; the quantize runs inside the GEMM kernel)", weight_bytes=1.0, act_bytes=4.0,
              gemm_in_bytes=1.0, kv_bytes=4.0, gemm_dtype="int8", attn_dtype="fp32",
              granularity="per-tensor-dynamic"),
    # ... and of the default O3 (per-tensor static: fbgemm takes the calibrated scale, the quantize runs in the GEMM)
    Precision("w8a8-f32", "SmoothQuant W8A8 int8, per-tensor static (O3), fp32 activations, attention and head "
              "(the CPU form: fbgemm)", weight_bytes=1.0, act_bytes=4.0, gemm_in_bytes=1.0, kv_bytes=4.0,
              gemm_dtype="int8", attn_dtype="fp32", granularity="per-tensor-static"),
    Precision("w8a16", "weight-only int8, 16-bit activations", 1.0 + 2 / 4096, 2, 2, 2, "fp16", "fp16",
              dequant_vflops_per_weight=2.0),
    # int4 with one fp16 scale and one fp16 zero per group of 128 weights (AWQ/GPTQ default group size)
    Precision("w4a16", "weight-only int4 (group 128), 16-bit activations", 0.5 + 4 / 128, 2, 2, 2, "fp16", "fp16",
              dequant_vflops_per_weight=3.0),
    Precision("llm-int8", "LLM.int8(): int8 vector-wise GEMM + fp16 GEMM over outlier columns", 1.0, 2, 1, 2,
              "int8", "fp16", quant_read_passes=3, quant_write_bytes=1, quant_launches=6, outlier_fraction=0.005),
]}

# SmoothQuant's activation granularity names -> precision ids (the paper's O1..O3)
GRANULARITY = {"per-token": "w8a8-o1", "per-tensor-dynamic": "w8a8-o2", "per-tensor-static": "w8a8-o3"}
# published_dev.csv names -> ours
ALIASES = {"int8-w8a8": "w8a8", "int8-weight-only": "w8a16", "int4-weight-only": "w4a16"}


def load_precision(pid: str) -> Precision:
    pid = ALIASES.get(pid, pid)
    if pid not in PRECISIONS:
        raise UnknownIdError("precision", pid, list(PRECISIONS))
    return PRECISIONS[pid]


# GPUs without a native bf16 path (Volta, Turing) run 16-bit schemes in fp16; a weight-only scheme's GEMM
# dtype is "16-bit", so it may fall back. A W8A8/FP8 scheme never falls back: that would be a different scheme.
_FALLBACK = {"bf16": "fp16"}


def resolve_dtype(acc: Accelerator, dtype: str, precision: Precision, role: str) -> str:
    """The dtype whose peak an op uses on ``acc``; a precision the hardware lacks is refused."""
    if acc.peak_dense.flops(dtype) is not None:
        return dtype
    if role == "attn" and acc.peak_dense.flops(_FALLBACK.get(dtype, dtype)) is not None:
        return _FALLBACK.get(dtype, dtype)
    if role == "attn" and acc.peak_dense.flops("bf16") is not None and dtype == "fp16":
        return "bf16"   # CPUs publish bf16 (AMX) but no fp16 figure
    if role == "attn" and acc.peak_dense.flops("fp32") is not None:
        return "fp32"
    have = ", ".join(sorted(acc.peak_dense.available()))
    raise PlannerError(f"precision '{precision.id}' is not supported on {acc.id}: it has no native {dtype} "
                       f"path (its dense peaks: {have})")


def check_supported(acc: Accelerator, precision: Precision) -> None:
    resolve_dtype(acc, precision.gemm_dtype, precision, "gemm")
    resolve_dtype(acc, precision.attn_dtype, precision, "attn")
