"""Precision recipes with real kernels: each replaces a model's linear layers by modules that run the scheme.

Kernels (all real integer / fp8 kernels; fake quantization lives in smoothquant.py and is never timed):
- fp32 / bf16 / fp16: ``F.linear`` on CUDA (cuBLAS); on CPU oneDNN with weights prepacked once (PackedLinear,
  what torch.compile's CPU freezing and IPEX do; any linear a quantized scheme keeps in float, e.g. lm_head,
  runs the same way). On this project's CPU
  (Sapphire Rapids, AMX) bf16 has a fast AMX path; fp16 on CPU is refused (no fast path; the planner maps a
  CPU's 16-bit work to bf16).
- fp8 (CUDA, sm89+): E4M3 weights and activations with per-tensor scales through ``torch._scaled_mm``
  (the TensorRT-LLM FP8 recipe; the core's fp8 precision: per-tensor static scales, FP8 KV cache).
- w8a8 (SmoothQuant, Xiao et al. 2023): smoothed, per-channel int8 weights; int8 activations per-token
  dynamic (O1), per-tensor dynamic (O2) or per-tensor static (O3). GEMM backends:
    ``onednn``  CPU: ``torch.ops.onednn.qlinear_pointwise`` (u8 x s8 -> fp32/bf16, the x86 int8 path of
                PyTorch's inductor quantization). Measured here the fastest CPU int8 GEMM (see the device profile).
    ``fbgemm``  CPU (AVX-512 VNNI): ``torch.ops.quantized.linear_dynamic`` for O2 (it quantizes the activation
                per tensor itself, inside the GEMM row) and ``linear_with_input_q_dq_qweight_dq_output_fp32`` for
                O3 (the calibrated per-tensor scale; fp32 in, int8 GEMM, fp32 out). Per-token (O1) has no fbgemm
                kernel. On CPU the default (``auto``) runs w8a8/w8a8-o3 and w8a8-o2 in their CPU forms
                (``w8a8-f32``, ``w8a8-o2-f32``: fbgemm, fp32 activations): on this project's CPU the AMX kernels
                of the 16-bit and oneDNN int8 paths changed speed 2x within minutes (README), fbgemm's did not.
    ``int_mm``  CUDA: ``torch._int_mm`` (s8 x s8 -> s32) then the scale epilogue; runs on CPU too but slowly.
- w8a16: ``torch._weight_int8pack_mm`` (CPU and CUDA). w4a16: ``torch._weight_int4pack_mm`` (CUDA tinygemm) or
  ``torch._weight_int4pack_mm_for_cpu`` (measured slower than w8a16 on this CPU: it is a real kernel, not a fast one).
- llm-int8 needs bitsandbytes (not a dependency): refused.

The 16-bit dtype of a quantized scheme (activations, attention, KV cache, lm_head) is fp16 on CUDA as the
core's precisions say, bf16 on CPU (the core maps a CPU's 16-bit attention to its bf16 peak as well).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from planner.errors import PlannerError
from planner.measure.models import region
from planner.measure.regions import gemm_shape_tag

GRANULARITIES = ("per-token", "per-tensor-dynamic", "per-tensor-static")
# precision id -> SmoothQuant activation granularity (planner.quant.GRANULARITY reversed; w8a8 = O3)
W8A8_GRANULARITY = {"w8a8": "per-tensor-static", "w8a8-o3": "per-tensor-static", "w8a8-o2": "per-tensor-dynamic",
                    "w8a8-o1": "per-token", "w8a8-o2-f32": "per-tensor-dynamic", "w8a8-f32": "per-tensor-static"}
SUPPORTED = ("fp32", "bf16", "fp16", "fp8", "w8a8", "w8a8-o1", "w8a8-o2", "w8a8-o3", "w8a8-f32", "w8a8-o2-f32",
             "w8a16", "w4a16")
# W8A8 precisions -> their CPU form (fbgemm int8 GEMMs, fp32 activations, attention, KV cache and head), what a
# CPU measures with the default backend; O1 (per-token) has no fbgemm kernel and keeps oneDNN
CPU_FORMS = {"w8a8": "w8a8-f32", "w8a8-o3": "w8a8-f32", "w8a8-o2": "w8a8-o2-f32"}
FP32_FORMS = ("w8a8-f32", "w8a8-o2-f32")
INT8_BACKENDS = ("auto", "onednn", "fbgemm", "int_mm")


@dataclass(frozen=True)
class Recipe:
    precision: str
    act_dtype: torch.dtype      # activations between ops, attention, lm_head, embedding
    kv_dtype: torch.dtype
    gemm: str                   # kernel the linear layers run, in words (goes into the run's metadata)
    int8_backend: str | None = None
    granularity: str | None = None


def sixteen_bit(device: str) -> torch.dtype:
    return torch.float16 if device.startswith("cuda") else torch.bfloat16


def resolve_int8_backend(backend: str, device: str) -> str:
    if backend not in INT8_BACKENDS:
        raise PlannerError(f"int8 backend must be one of {', '.join(INT8_BACKENDS)}, got '{backend}'")
    if backend == "auto":
        return "int_mm" if device.startswith("cuda") else "onednn"
    if backend in ("onednn", "fbgemm") and device.startswith("cuda"):
        raise PlannerError(f"int8 backend '{backend}' is a CPU kernel; on CUDA use int_mm")
    return backend


def measured_precision(precision: str, device: str, int8_backend: str = "auto") -> str:
    """The precision a run measures: on CPU with the default backend a W8A8 precision runs in its CPU form
    (CPU_FORMS); anything else as asked."""
    if device.startswith("cuda") or int8_backend != "auto":
        return precision
    return CPU_FORMS.get(precision, precision)


def cpu_form_note(precision: str, measured: str) -> str | None:
    """One line saying that a CPU run measures ``measured`` for the ``precision`` asked (None: the same)."""
    if measured == precision:
        return None
    return (f"on CPU {precision} runs as {measured}: its int8 GEMMs through fbgemm (AVX-512 VNNI), activations, "
            f"attention, KV cache and head in fp32; --int8-backend onednn runs {precision} itself (bf16, AMX)")


def make_recipe(precision: str, device: str, int8_backend: str = "auto") -> Recipe:
    """What a precision runs as on ``device``; refuses a scheme without a real kernel there."""
    cuda = device.startswith("cuda")
    if precision not in SUPPORTED:
        extra = " (needs bitsandbytes, not a dependency)" if precision == "llm-int8" else ""
        raise PlannerError(f"precision '{precision}' has no measurement recipe{extra}; measurable: {', '.join(SUPPORTED)}")
    if precision == "fp32":
        return Recipe("fp32", torch.float32, torch.float32, "F.linear fp32" if cuda else "oneDNN prepacked fp32")
    if precision == "bf16":
        return Recipe("bf16", torch.bfloat16, torch.bfloat16, "F.linear bf16" if cuda else "oneDNN prepacked bf16 (AMX)")
    if precision == "fp16":
        if not cuda:
            raise PlannerError("fp16 is not measured on CPU (no fast fp16 GEMM path; CPUs run 16-bit work in bf16): "
                               "use bf16")
        return Recipe("fp16", torch.float16, torch.float16, "F.linear fp16")
    if precision == "fp8":
        if not cuda:
            raise PlannerError("fp8 needs a CUDA GPU with FP8 tensor cores (sm89+): torch._scaled_mm")
        major, minor = torch.cuda.get_device_capability()
        if (major, minor) < (8, 9):
            raise PlannerError(f"fp8 needs compute capability 8.9+ (this GPU: {major}.{minor})")
        return Recipe("fp8", torch.bfloat16, torch.float8_e4m3fn, "torch._scaled_mm e4m3 per-tensor scales")
    b16 = sixteen_bit(device)
    if precision in FP32_FORMS:
        base = "w8a8-o2" if precision == "w8a8-o2-f32" else "w8a8"
        if cuda:
            raise PlannerError(f"{precision} is the CPU form of W8A8 (fbgemm, fp32 activations): on CUDA use {base}")
        if int8_backend not in ("auto", "fbgemm"):
            raise PlannerError(f"{precision} runs through fbgemm (its int8 linears take fp32 input), "
                               f"not '{int8_backend}'")
        return Recipe(precision, torch.float32, torch.float32, "SmoothQuant W8A8 int8 GEMM via fbgemm, fp32 "
                      "activations", "fbgemm", W8A8_GRANULARITY[precision])
    if precision.startswith("w8a8"):
        backend = resolve_int8_backend(int8_backend, device)
        gran = W8A8_GRANULARITY[precision]
        if backend == "fbgemm" and gran == "per-token":
            raise PlannerError("the fbgemm backend has per-tensor activation kernels only: it runs w8a8-o2 and "
                               "w8a8/w8a8-o3, not per-token w8a8-o1 (use --int8-backend onednn)")
        return Recipe(precision, b16, b16, f"SmoothQuant W8A8 int8 GEMM via {backend}", backend, gran)
    if precision == "w8a16":
        return Recipe("w8a16", b16, b16, "torch._weight_int8pack_mm")
    if precision == "w4a16":
        return Recipe("w4a16", torch.bfloat16, torch.bfloat16,
                      "torch._weight_int4pack_mm" + ("" if cuda else "_for_cpu (slow on CPU)"))
    raise PlannerError(f"no recipe for '{precision}'")


# ------------------------------------------------------------------------------------------ quantizers

def int8_weight_per_channel(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int8 per output channel: (q [N,K] int8, scale [N] fp32), w ~ q * scale."""
    scale = (w.float().abs().amax(dim=1) / 127.0).clamp(min=1e-8)
    q = torch.round(w.float() / scale[:, None]).clamp(-127, 127).to(torch.int8)
    return q, scale


def act_scale(x2: torch.Tensor, granularity: str, static: float | None) -> torch.Tensor:
    """Activation scale: per row (per-token), one for the tensor (per-tensor-dynamic) or the calibrated one."""
    if granularity == "per-token":
        return (x2.abs().amax(dim=1, keepdim=True).float() / 127.0).clamp(min=1e-8)
    if granularity == "per-tensor-dynamic":
        return (x2.abs().amax().float() / 127.0).clamp(min=1e-8)
    return torch.tensor(static, dtype=torch.float32, device=x2.device)


def _scaled_fp32(x2: torch.Tensor, scale) -> torch.Tensor:
    """round(x / scale) clamped to +-127, in one fp32 copy of x updated in place: x.float() / scale would hold two
    (at Llama-3-70B's down projection, batch 64 x 2048 tokens, each is 15 GB on the GPU)."""
    y = x2.to(torch.float32, copy=True)
    return y.div_(scale).round_().clamp_(-127, 127)


def quantize_s8(x2: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return _scaled_fp32(x2, scale).to(torch.int8)


def quantize_u8(x2: torch.Tensor, scale) -> torch.Tensor:
    """Symmetric int8 stored as uint8 with zero point 128 (the x86 oneDNN kernels take u8 activations)."""
    return _scaled_fp32(x2, scale).add_(128).to(torch.uint8)


# ------------------------------------------------------------------------------------------ linear modules

def packed_linear_available() -> bool:
    return hasattr(torch.ops.mkldnn, "_linear_pointwise") and torch.backends.mkldnn.is_available()


class PackedLinear(nn.Module):
    """fp32/bf16 linear with weights reordered once into oneDNN's blocked layout
    (``torch.ops.mkldnn._linear_pointwise``), as torch.compile's CPU freezing pass and IPEX run linears: F.linear
    repacks the weight on every call, which at small M costs more than the GEMM (measured here at M = 8:
    34 ms vs 19 ms for a 4096 x 11008 fp32 weight, one thread)."""

    def __init__(self, lin: nn.Linear):
        super().__init__()
        self.k, self.n = lin.in_features, lin.out_features
        self.register_buffer("w", torch.ops.mkldnn._reorder_linear_weight(lin.weight.data.contiguous(), 1))
        self.bias = None if lin.bias is None else lin.bias.data

    def forward(self, x):
        shape = x.shape
        y = torch.ops.mkldnn._linear_pointwise(x.reshape(-1, self.k), self.w, self.bias, "none", [None], "")
        return y.reshape(*shape[:-1], self.n)


class W8A8Linear(nn.Module):
    """SmoothQuant W8A8 linear: int8 per-channel weights, int8 activations at one granularity, a real int8 GEMM.

    Per-token / per-tensor-dynamic quantization runs in a ``quant`` region (the cost model's quant op of
    O1/O2); per-tensor-static quantization is part of the GEMM row (the cost model fuses it into the producer).
    """

    def __init__(self, lin: nn.Linear, granularity: str, backend: str, static_scale: float | None, out_dtype):
        super().__init__()
        if granularity == "per-tensor-static" and static_scale is None:
            raise ValueError("per-tensor-static needs a calibrated scale")
        self.k, self.n = lin.in_features, lin.out_features
        self.granularity, self.backend, self.static = granularity, backend, static_scale
        self.out_dtype = out_dtype
        q, s = int8_weight_per_channel(lin.weight.data)
        self.register_buffer("w_scale", s)
        if static_scale is not None:   # once: torch.tensor(float, device=cuda) in every call copies and syncs the stream
            self.register_buffer("static_t", torch.tensor(float(static_scale), dtype=torch.float32,
                                                          device=lin.weight.device))
        self.bias = None if lin.bias is None else lin.bias.data.to(out_dtype)
        if backend == "onednn":
            self.packed = torch.ops.onednn.qlinear_prepack(q, [1, self.k])
            self.register_buffer("w_zp", torch.zeros(self.n, dtype=torch.long))
        elif backend == "fbgemm":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                wq = torch._make_per_channel_quantized_tensor(q, s.double(), torch.zeros(self.n, dtype=torch.long), 0)
                self.packed = torch.ops.quantized.linear_prepack(wq, None if lin.bias is None else lin.bias.data.float())
        elif backend == "int_mm":
            self.register_buffer("w_t", q.t().contiguous())        # [K, N]
        else:
            raise ValueError(backend)

    def forward(self, x):
        shape = x.shape
        x2 = x.reshape(-1, self.k)
        if self.backend == "fbgemm":      # fp32 in, int8 GEMM, fp32 out; the quantize runs inside the kernel
            # the packed weight's shape is not in the trace: record the GEMM's M, K, N beside it (FLOP count)
            with torch.profiler.record_function(gemm_shape_tag(x2.shape[0], self.k, self.n)):
                if self.granularity == "per-tensor-static":    # O3: the calibrated scale, u8 with zero point 128
                    y = torch.ops.quantized.linear_with_input_q_dq_qweight_dq_output_fp32(
                        x2.float(), float(self.static), 128, self.packed)
                else:                                          # O2: fbgemm takes the tensor's range itself
                    y = torch.ops.quantized.linear_dynamic(x2.float(), self.packed, False)
            return y.to(self.out_dtype).reshape(*shape[:-1], self.n)
        if self.granularity == "per-tensor-static":
            y = self._gemm(x2, self.static_t)
        else:
            with region("quant"):
                s = act_scale(x2, self.granularity, None)
                xq = quantize_u8(x2, s) if self.backend == "onednn" else quantize_s8(x2, s)
            y = self._gemm_q(xq, s)
        return y.reshape(*shape[:-1], self.n)

    def _gemm(self, x2, s):
        xq = quantize_u8(x2, s) if self.backend == "onednn" else quantize_s8(x2, s)
        return self._gemm_q(xq, s)

    def _gemm_q(self, xq, s):
        if self.backend == "onednn":
            per_tensor = s.numel() == 1
            y = torch.ops.onednn.qlinear_pointwise(
                xq, float(s) if per_tensor else 1.0, 128, self.packed, self.w_scale, self.w_zp,
                self.bias if per_tensor else None, 1.0, 0, self.out_dtype, "none", [], "")
            if not per_tensor:                                   # per-token dequant epilogue
                y = y * s.to(self.out_dtype)
                if self.bias is not None:
                    y = y + self.bias
            return y
        m = xq.shape[0]
        pad = 17 - m if (xq.is_cuda and m <= 16) else 0         # CUDA _int_mm needs M > 16
        if pad:
            xq = torch.cat([xq, xq.new_zeros(pad, xq.shape[1])])
        acc = torch._int_mm(xq, self.w_t)[:m]
        # the dequantize epilogue written straight into the output dtype (int32 x fp32 computed in fp32): no fp32
        # [M, N] copies beside the int32 accumulator (Llama-3-70B's fused gate/up output at batch 64 x 2048 tokens:
        # 30 GB each), and for per-tensor scales one kernel instead of three
        y = torch.empty(acc.shape, dtype=self.out_dtype, device=acc.device)
        if s.numel() == 1:
            torch.mul(acc, s * self.w_scale, out=y)
        else:                                                    # per-token: no [M, N] outer product of the scales
            torch.mul(torch.mul(acc, s), self.w_scale, out=y)
        return y if self.bias is None else y + self.bias


class Fp8Linear(nn.Module):
    """E4M3 weights (per-tensor scale) x E4M3 activations (per-tensor static scale) via torch._scaled_mm."""
    E4M3_MAX = 448.0

    def __init__(self, lin: nn.Linear, act_absmax: float):
        super().__init__()
        self.k, self.n = lin.in_features, lin.out_features
        w = lin.weight.data.float()
        ws = (w.abs().max() / self.E4M3_MAX).clamp(min=1e-12)
        self.register_buffer("w8", (w / ws).to(torch.float8_e4m3fn))          # [N, K]; .t() is column-major
        self.register_buffer("w_scale", ws.reshape(()))
        self.register_buffer("x_scale", torch.tensor(max(act_absmax, 1e-6) / self.E4M3_MAX, device=w.device))
        self.bias = None if lin.bias is None else lin.bias.data.to(torch.bfloat16)

    def forward(self, x):
        shape = x.shape
        x2 = x.reshape(-1, self.k)
        # no padding of M: torch checks K (mat1.size(1)) and both dims of mat2 for multiples of 16, not M
        # (_meta_registrations.py's meta_scaled_mm mirrors Blas.cpp); padding cost two kernels per decode GEMV
        xq = (x2.float() / self.x_scale).clamp(-self.E4M3_MAX, self.E4M3_MAX).to(torch.float8_e4m3fn)
        y = torch._scaled_mm(xq, self.w8.t(), scale_a=self.x_scale, scale_b=self.w_scale, bias=self.bias,
                             out_dtype=torch.bfloat16)
        return y.reshape(*shape[:-1], self.n)


class W8A16Linear(nn.Module):
    def __init__(self, lin: nn.Linear, act_dtype):
        super().__init__()
        self.k, self.n = lin.in_features, lin.out_features
        q, s = int8_weight_per_channel(lin.weight.data)
        self.register_buffer("q", q)
        self.register_buffer("s", s.to(act_dtype))
        self.bias = None if lin.bias is None else lin.bias.data.to(act_dtype)

    def forward(self, x):
        shape = x.shape
        y = torch._weight_int8pack_mm(x.reshape(-1, self.k), self.q, self.s)
        y = y if self.bias is None else y + self.bias
        return y.reshape(*shape[:-1], self.n)


class W4A16Linear(nn.Module):
    """Group-wise asymmetric int4 (group 128, AWQ/GPTQ's default) in the tinygemm layout:
    w = (q - 8) * scale + zero, q in [0, 15]."""
    GROUP = 128

    def __init__(self, lin: nn.Linear):
        super().__init__()
        self.k, self.n = lin.in_features, lin.out_features
        g = self.GROUP
        if self.k % g:
            raise PlannerError(f"w4a16 needs in_features divisible by {g} (got {self.k})")
        w = lin.weight.data.float().reshape(self.n, self.k // g, g)
        mn, mx = w.amin(-1), w.amax(-1)
        scale = ((mx - mn) / 15).clamp(min=1e-6)
        zero = mn + scale * 8
        q = torch.clamp(torch.round((w - mn[..., None]) / scale[..., None]), 0, 15).to(torch.int32).reshape(self.n, self.k)
        self.register_buffer("sz", torch.stack([scale.t(), zero.t()], -1).to(torch.bfloat16).contiguous())
        if w.is_cuda:
            packed_u8 = (q[:, ::2] << 4 | q[:, 1::2]).to(torch.uint8)
            self.register_buffer("packed", torch._convert_weight_to_int4pack(packed_u8, 8))
        else:
            self.register_buffer("packed", torch._convert_weight_to_int4pack_for_cpu(q, 1))
        self.bias = None if lin.bias is None else lin.bias.data.to(torch.bfloat16)

    def forward(self, x):
        shape = x.shape
        x2 = x.reshape(-1, self.k).to(torch.bfloat16)
        if x2.is_cuda:
            y = torch._weight_int4pack_mm(x2, self.packed, self.GROUP, self.sz)
        else:
            y = torch._weight_int4pack_mm_for_cpu(x2, self.packed, self.GROUP, self.sz)
        y = y if self.bias is None else y + self.bias
        return y.reshape(*shape[:-1], self.n)


# ------------------------------------------------------------------------------------------ apply

def quantizable_linears(model: nn.Module) -> dict[str, nn.Linear]:
    """Linear layers a scheme quantizes: all but the decoder's lm_head (which stays 16-bit in every scheme,
    as SmoothQuant and TensorRT-LLM keep it and as the cost model's lm_head says)."""
    return {n: m for n, m in model.named_modules() if isinstance(m, nn.Linear) and not n.endswith("lm_head")}


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, new)


def apply_recipe(model: nn.Module, recipe: Recipe, calibrate, alpha: float = 0.5) -> dict:
    """Swap the linear layers for the recipe's kernels, in place. ``calibrate()`` runs the model on calibration
    inputs (needed by SmoothQuant and static scales). Returns notes for the run's metadata."""
    from planner.measure import smoothquant as sq
    lins = quantizable_linears(model)
    notes: dict = {"gemm_kernel": recipe.gemm}
    with torch.no_grad():
        if recipe.precision == "fp8":
            amax = sq.collect_tensor_absmax(model, lins, calibrate)
            for n, lin in lins.items():
                _replace(model, n, Fp8Linear(lin, amax[n]))
        elif recipe.precision.startswith("w8a8"):
            groups = sq.smoothing_groups(model)
            s_info = sq.smooth_model(model, groups, calibrate, alpha)
            amax = sq.collect_tensor_absmax(model, lins, calibrate) if recipe.granularity == "per-tensor-static" else {}
            for n, lin in lins.items():
                static = amax[n] / 127.0 if n in amax else None
                _replace(model, n, W8A8Linear(lin, recipe.granularity, recipe.int8_backend, static, recipe.act_dtype))
            notes.update(smoothquant_alpha=alpha, granularity=recipe.granularity, int8_backend=recipe.int8_backend,
                         smoothed_groups=len(s_info))
        elif recipe.precision == "w8a16":
            for n, lin in lins.items():
                _replace(model, n, W8A16Linear(lin, recipe.act_dtype))
        elif recipe.precision == "w4a16":
            for n, lin in lins.items():
                _replace(model, n, W4A16Linear(lin))
    notes["quantized_linears"] = len(lins) if recipe.precision not in ("fp32", "bf16", "fp16") else 0
    notes["float_linears"] = pack_float_linears(model)
    return notes


def pack_float_linears(model: nn.Module) -> str:
    """On CPU, every linear still in floating point (all of them in fp32/bf16; lm_head in quantized schemes)
    runs with prepacked oneDNN weights."""
    floats = {n: m for n, m in model.named_modules() if type(m) is nn.Linear}
    if not floats or floats[next(iter(floats))].weight.is_cuda:
        return "F.linear"
    if not packed_linear_available():
        return "F.linear (oneDNN prepacking unavailable)"
    with torch.no_grad():
        for n, lin in floats.items():
            _replace(model, n, PackedLinear(lin))
    return "oneDNN prepacked (torch.ops.mkldnn._linear_pointwise)"


def linear_check(recipe: Recipe, device: str, k: int = 256, n: int = 256, m: int = 8) -> float:
    """Relative error of the recipe's linear against fp32 on random data (a guard that the kernel is wired right)."""
    with torch.no_grad():
        return _linear_check(recipe, device, k, n, m)


def _linear_check(recipe: Recipe, device: str, k: int, n: int, m: int) -> float:
    torch.manual_seed(1)
    lin = nn.Linear(k, n, dtype=torch.float32, device=device)
    x = torch.randn(m, k, device=device)
    ref = F.linear(x, lin.weight, lin.bias)
    lin16 = nn.Linear(k, n, dtype=recipe.act_dtype, device=device)
    lin16.load_state_dict({kk: v.to(recipe.act_dtype) for kk, v in lin.state_dict().items()})
    if recipe.precision.startswith("w8a8"):
        static = float(x.abs().max()) / 127.0
        mod = W8A8Linear(lin16, recipe.granularity, recipe.int8_backend, static, recipe.act_dtype)
    elif recipe.precision == "w8a16":
        mod = W8A16Linear(lin16, recipe.act_dtype)
    elif recipe.precision == "w4a16":
        mod = W4A16Linear(lin16)
    elif recipe.precision == "fp8":
        mod = Fp8Linear(lin16, float(x.abs().max()))
    elif device == "cpu" and packed_linear_available():
        mod = PackedLinear(lin16)
    else:
        mod = lin16
    with torch.no_grad():
        y = mod(x.to(recipe.act_dtype)).float()
    return float((y - ref).norm() / ref.norm())
