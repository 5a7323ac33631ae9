"""Op cost records: the unit that prediction and measurement share.

An ``OpTemplate`` is one op of a model as a function of the step's shape. Its FLOPs and bytes are linear
combinations of five monomials of (B sequences, S new tokens per sequence, C context length attended):

    MONOMIALS = [1, B*S, B*S*C, B*C, B]

e.g. a weight GEMM has weight bytes on ``1`` and FLOPs on ``B*S``; attention scores have FLOPs on ``B*S*C``;
a decode step reads the KV cache on ``B*C``. Keeping ops symbolic lets one template serve a single
``estimate`` and a vectorised sweep over millions of shapes; ``OpCost`` is the template evaluated at one shape
(what the roofline table prints and what a measured row joins on: ``name`` + ``phase``).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

N_MONO = 5
ONE, TOK, TOK_CTX, SEQ_CTX, SEQ = range(N_MONO)

# Op kinds and which peak each uses: 'gemm'/'conv' run on the precision's GEMM dtype, 'attention' on its
# attention dtype, 'vector' (norms, activations, quantize) on the non-tensor fp32 rate, 'comm' on the link.
KINDS = ("gemm", "conv", "attention", "vector", "pool", "comm")


def mono(**coefs: float) -> np.ndarray:
    """Coefficient vector from keywords: mono(one=..., tok=..., tok_ctx=..., seq_ctx=..., seq=...)."""
    v = np.zeros(N_MONO)
    for k, c in coefs.items():
        v[("one", "tok", "tok_ctx", "seq_ctx", "seq").index(k)] = c
    return v


@dataclass(frozen=True, eq=False)
class OpTemplate:
    name: str                 # attn_qkv, attn_score, attn_out, mlp_up, mlp_down, lm_head, norm, conv ...
    phase: str                # vision | prefill | decode
    kind: str                 # one of KINDS
    count: float              # identical instances per forward (e.g. n_layers)
    flops: np.ndarray         # tensor (or conv) FLOPs per instance
    weight_bytes: np.ndarray
    act_bytes: np.ndarray     # activations read + written
    kv_bytes: np.ndarray      # KV cache read + written
    vflops: np.ndarray = field(default_factory=lambda: np.zeros(N_MONO))  # non-tensor work (dequant...)
    launches: float = 1.0     # kernels per instance
    sharded: bool = True      # split across tensor-parallel ranks
    window: int | None = None  # sliding-window attention: context is capped at this
    moe: tuple[int, int] | None = None  # (top_k, n_experts): weights touched = coverage of experts
    group: str = ""           # finer label (CNN stage), not part of the join key
    compute_scale: float = 1.0  # precision-specific kernel efficiency multiplier (e.g. per-token epilogue)
    dtype: str | None = None  # overrides the precision's dtype for this op (LLM.int8()'s fp16 outlier GEMM)
    fusible: bool = False     # elementwise work an optimizing engine folds into a neighbouring kernel
    # a transformer block's small op outside the LLM phases (a vision encoder's norm, activation): a device
    # profile's measured eager fixed cost per call applies to it as to the LLM phases' ops (not to an encoder's
    # attention: its measured rate, EngineEff.encoder_attn_eff_by_context, holds its fixed costs)
    eager_small: bool = False
    # the key of that fixed cost in EngineEff.op_overhead_s ("": the op's name); a CNN's batch norm is
    # "cnn.norm", one aten kernel in a network's sequence, not a decoder's several-kernel RMSNorm
    overhead_key: str = ""

    def evaluate(self, batch: float, new_tokens: float, context: float) -> "OpCost":
        """Numbers of all ``count`` instances at one shape."""
        m = monomials(batch, new_tokens, context if self.window is None else min(context, self.window))
        cover = expert_coverage(self.moe, batch * new_tokens) if self.moe else 1.0
        return OpCost(self.name, self.phase, self.kind, self.group, self.count,
                      flops=self.count * float(self.flops @ m),
                      vflops=self.count * float(self.vflops @ m),
                      weight_bytes=self.count * float(self.weight_bytes @ m) * cover,
                      act_bytes=self.count * float(self.act_bytes @ m),
                      kv_bytes=self.count * float(self.kv_bytes @ m),
                      launches=self.count * self.launches)


@dataclass(frozen=True)
class OpCost:
    name: str
    phase: str
    kind: str
    group: str
    count: float
    flops: float
    vflops: float
    weight_bytes: float
    act_bytes: float
    kv_bytes: float
    launches: float

    @property
    def bytes(self) -> float:
        return self.weight_bytes + self.act_bytes + self.kv_bytes

    @property
    def intensity(self) -> float:
        """FLOP per byte of DRAM traffic."""
        return (self.flops + self.vflops) / self.bytes if self.bytes else float("inf")


def monomials(batch, new_tokens, context):
    """The monomial vector (or matrix, for array inputs: shape (5, N))."""
    b, s, c = batch, new_tokens, context
    return np.array([np.ones_like(np.asarray(b, dtype=float)), b * s, b * s * c, b * c, b], dtype=float)


def expert_coverage(moe: tuple[int, int], tokens):
    """Expected fraction of experts a batch of ``tokens`` routes to, assuming uniform top-k routing:
    1 - (1 - k/E)^tokens. One token reads k of E experts; a large batch reads them all."""
    k, e = moe
    return 1.0 - (1.0 - k / e) ** np.asarray(tokens, dtype=float)


# ----------------------------------------------------------------------------------- formulas used by arch/

def gemm(name: str, phase: str, m_coef: str, k: int, n: int, *, w_bytes: float, a_in_bytes: float,
         a_out_bytes: float, count: float, **kw) -> OpTemplate:
    """Y[M,N] = X[M,K] W[K,N] with M = tokens (monomial ``m_coef``): 2*M*K*N FLOPs, K*N weights read once,
    M*K activations in, M*N out."""
    return OpTemplate(name, phase, "gemm", count,
                      flops=mono(**{m_coef: 2.0 * k * n}),
                      weight_bytes=mono(one=k * n * w_bytes),
                      act_bytes=mono(**{m_coef: k * a_in_bytes + n * a_out_bytes}),
                      kv_bytes=mono(), **kw)


def elementwise(name: str, phase: str, width: int, *, reads: float, writes: float, flops_per_elem: float,
                bytes_per_elem: float, count: float, weight_bytes: float = 0.0, **kw) -> OpTemplate:
    """A per-token op over ``width`` features (norm, activation, residual add, rope, quantize)."""
    return OpTemplate(name, phase, "vector", count,
                      flops=mono(), vflops=mono(tok=flops_per_elem * width),
                      weight_bytes=mono(one=weight_bytes), act_bytes=mono(tok=(reads + writes) * width * bytes_per_elem),
                      kv_bytes=mono(), **kw)
