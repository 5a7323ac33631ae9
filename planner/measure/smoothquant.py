"""SmoothQuant (Xiao et al., ICML 2023, arXiv:2211.10438), our own implementation.

1. Calibrate: forward hooks record each linear input's per-channel maximum |X_j| over calibration tokens.
2. Smoothing factors per input channel j of the linears that share an input:
   ``s_j = max|X_j|^alpha / max|W_j|^(1 - alpha)`` (paper eq. 4), max|W_j| over the output rows of every
   linear reading that input.
3. Fold: X' = X / s into the preceding norm's weight (and bias), W' = W * s (columns) into the linears, so the
   product is unchanged while activation outlier channels shrink and weights absorb them.
4. Quantize weights per output channel to int8; activations per token (O1), per tensor dynamically (O2) or
   with a calibrated static per-tensor scale (O3).

Which linears are smoothed follows the paper's code (smooth_lm): the QKV projection (from the attention norm)
and the first MLP projection (from the MLP norm). Fake quantization here is for accuracy studies only; timing
always uses the real kernels in recipes.py.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

GRANULARITIES = ("per-token", "per-tensor-dynamic", "per-tensor-static")


@dataclass
class SmoothGroup:
    """Linears that read the same activation, and the norm whose output that activation is (None: the scale
    is applied explicitly at the quantizer, mathematically identical, used where no fold is possible)."""
    norm: nn.Module | None
    linears: list[str]


def smoothing_groups(model: nn.Module) -> list[SmoothGroup]:
    """Groups of our models (planner.measure.models): norm1 -> qkv and norm2 -> up, per layer."""
    out = []
    for name, mod in model.named_modules():
        if hasattr(mod, "norm1") and hasattr(mod, "qkv") and hasattr(mod, "up"):
            p = f"{name}." if name else ""
            out += [SmoothGroup(mod.norm1, [p + "qkv"]), SmoothGroup(mod.norm2, [p + "up"])]
    return out


def _hook_inputs(model: nn.Module, names: list[str], fn) -> list:
    handles = []
    for n in names:
        mod = model.get_submodule(n)
        handles.append(mod.register_forward_pre_hook(lambda m, args, n=n: fn(n, args[0])))
    return handles


def collect_channel_absmax(model: nn.Module, names: list[str], calibrate, mask_fn=None) -> dict[str, torch.Tensor]:
    """Per-channel max |x_j| of each named linear's input over all calibration tokens. ``mask_fn()`` may give a
    bool mask of real (non-padding) tokens of the current batch."""
    out: dict[str, torch.Tensor] = {}

    def rec(n, x):
        x2 = x.detach().reshape(-1, x.shape[-1]).float().abs()
        if mask_fn is not None:
            m = mask_fn()
            if m is not None:
                x2 = x2[m.reshape(-1)]
        cur = x2.amax(dim=0)
        out[n] = cur if n not in out else torch.maximum(out[n], cur)

    handles = _hook_inputs(model, names, rec)
    try:
        with torch.no_grad():
            calibrate()
    finally:
        for h in handles:
            h.remove()
    return out


def collect_tensor_absmax(model: nn.Module, lins: dict[str, nn.Module], calibrate, mask_fn=None) -> dict[str, float]:
    """Per-tensor max |x| of each linear's input (static O3 / fp8 scales)."""
    ch = collect_channel_absmax(model, list(lins), calibrate, mask_fn)
    return {n: float(v.max()) for n, v in ch.items()}


def smoothing_factors(act_max: torch.Tensor, weights: list[torch.Tensor], alpha: float) -> torch.Tensor:
    """s_j = max|X_j|^alpha / max|W_j|^(1-alpha); weights are [N_i, K] matrices sharing the input."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    w_max = torch.cat([w.detach().float().abs() for w in weights], dim=0).amax(dim=0)
    a = act_max.float().clamp(min=1e-5)
    s = a.pow(alpha) / w_max.clamp(min=1e-5).pow(1.0 - alpha)
    return s.clamp(min=1e-5)


def fold(norm: nn.Module | None, linears: list[nn.Linear], s: torch.Tensor) -> None:
    """X' = X / s folded into the norm (gamma and beta), W' = W * s into the linears' input columns."""
    with torch.no_grad():
        if norm is not None:
            norm.weight.div_(s.to(norm.weight.dtype))
            if getattr(norm, "bias", None) is not None:
                norm.bias.div_(s.to(norm.bias.dtype))
        for lin in linears:
            lin.weight.mul_(s.to(lin.weight.dtype)[None, :])


def smooth_model(model: nn.Module, groups: list[SmoothGroup], calibrate, alpha: float, mask_fn=None) -> dict:
    """Calibrate and fold the smoothing factors of every group into the model. Returns {first linear: s}."""
    act = collect_channel_absmax(model, [g.linears[0] for g in groups], calibrate, mask_fn)
    out = {}
    for g in groups:
        lins = [model.get_submodule(n) for n in g.linears]
        s = smoothing_factors(act[g.linears[0]], [lin.weight for lin in lins], alpha)
        fold(g.norm, lins, s)
        out[g.linears[0]] = s
    return out


# ------------------------------------------------------------------------------------------ fake quantization
# (accuracy study only: the arithmetic of int8 quantization in float, never timed)

def fq_weight_per_channel(w: torch.Tensor) -> torch.Tensor:
    s = (w.abs().amax(dim=1, keepdim=True) / 127.0).clamp(min=1e-8)
    return torch.round(w / s).clamp(-127, 127) * s


def fq_activation(x: torch.Tensor, granularity: str, static_scale: float | None = None, mask=None) -> torch.Tensor:
    """x [B, S, K]. per-token: one scale per token; per-tensor-dynamic: one per sequence (a batch-1 tensor) over
    its real tokens (``mask`` [B, S]); per-tensor-static: the calibrated scale."""
    if granularity == "per-token":
        s = x.abs().amax(dim=-1, keepdim=True) / 127.0
    elif granularity == "per-tensor-dynamic":
        a = x.abs()
        if mask is not None:
            a = a * mask[..., None].to(a.dtype)
        s = a.amax(dim=(-2, -1), keepdim=True) / 127.0
    elif granularity == "per-tensor-static":
        s = torch.tensor(static_scale, dtype=x.dtype, device=x.device)
    else:
        raise ValueError(granularity)
    s = s.clamp(min=1e-8)
    return torch.round(x / s).clamp(-127, 127) * s


class FakeQuantLinear(nn.Module):
    """y = Q_a(x / s) Q_w(W * s)^T + b: SmoothQuant W8A8 arithmetic (s = 1 without smoothing)."""

    def __init__(self, lin: nn.Linear, granularity: str, s: torch.Tensor | None, mask_fn):
        super().__init__()
        w = lin.weight.data.float()
        self.inv_s = None if s is None else (1.0 / s).float()
        self.w = fq_weight_per_channel(w if s is None else w * s[None, :])
        self.b = None if lin.bias is None else lin.bias.data.float()
        self.granularity, self.mask_fn = granularity, mask_fn
        self.static: float | None = None

    def forward(self, x):
        xs = x if self.inv_s is None else x * self.inv_s
        xq = fq_activation(xs, self.granularity, self.static, self.mask_fn())
        return nn.functional.linear(xq, self.w, self.b)
