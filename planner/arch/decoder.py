"""Decoder-only LLM ops for one forward step, prefill or decode (GQA/MQA, gated MLP, MoE, sliding window).

Each op is symbolic in (B, S, C) (see planner.ops): prefill is B sequences of S = input tokens attending a
causal mean context C = (S+1)/2; a decode step is B sequences of S = 1 token attending the current context C.
Formulas: Kaplan et al. 2020 / Pope et al. 2022 ("Efficiently scaling transformer inference") op counts:
a GEMM is 2*M*K*N FLOPs; attention is 2*S*C*hd FLOPs per head for QK^T and again for PV.
"""
from __future__ import annotations

from dataclasses import replace

from planner.ops import OpTemplate, elementwise, gemm, mono
from planner.quant import Precision
from planner.specs import DecoderArch


def linear_extras(name_phase: tuple[str, str], widths: list[int], p: Precision, count: float) -> list[OpTemplate]:
    """Activation quantize kernels a scheme adds in front of its linear layers (SmoothQuant O1/O2, LLM.int8)."""
    if not p.quant_launches:
        return []
    _, phase = name_phase
    w = sum(widths)
    return [elementwise("quant", phase, w, reads=p.quant_read_passes, writes=p.quant_write_bytes / p.act_bytes,
                        flops_per_elem=3.0, bytes_per_elem=p.act_bytes, count=count,
                        launches=p.quant_launches * len(widths))]


def weight_gemm(name: str, phase: str, m: str, k: int, n: int, p: Precision, count: float, **kw) -> list[OpTemplate]:
    """A weight GEMM under precision ``p``: the main GEMM, dequant work for weight-only schemes, and the fp16
    outlier GEMM of LLM.int8()."""
    dq = p.dequant_vflops_per_weight * k * n
    main = gemm(name, phase, m, k, n, w_bytes=p.weight_bytes, a_in_bytes=p.gemm_in_bytes, a_out_bytes=p.act_bytes,
                count=count, compute_scale=p.gemm_scale, **kw)
    if dq:   # dequantized once per 128-row tile of activations (tiled weight-only GEMM kernels)
        main = replace(main, vflops=mono(one=dq, **{m: dq / 128}))
    out = [main]
    if p.outlier_fraction:
        ko = max(1, round(k * p.outlier_fraction))
        out.append(gemm(name + "_outlier", phase, m, ko, n, w_bytes=2.0, a_in_bytes=2.0, a_out_bytes=p.act_bytes,
                        count=count, dtype=p.attn_dtype, **{k_: v for k_, v in kw.items() if k_ != "moe"}))
    return out


def attention(a: DecoderArch, phase: str, p: Precision, count: float, window: int | None) -> OpTemplate:
    """Fused attention core (QK^T, softmax, PV): flash-attention-style, scores never reach DRAM."""
    hd, h, kvh = a.hd, a.n_heads, a.n_kv_heads
    kv_elem = 2 * kvh * hd * p.kv_bytes
    kv = mono(tok=kv_elem) if phase == "prefill" else mono(tok=kv_elem, seq_ctx=kv_elem)  # write new, read past
    acts = mono(tok=(h * hd + 2 * kvh * hd + h * hd) * p.act_bytes)  # q, k, v in; out
    return OpTemplate("attn_score", phase, "attention", count,
                      flops=mono(tok_ctx=4.0 * h * hd), vflops=mono(tok_ctx=5.0 * h),   # softmax: ~5 ops/score
                      weight_bytes=mono(), act_bytes=acts, kv_bytes=kv, launches=1.0, window=window)


def layer_ops(a: DecoderArch, phase: str, p: Precision) -> list[OpTemplate]:
    d, hd, L = a.d_model, a.hd, a.n_layers
    q, kv = a.n_heads * hd, a.n_kv_heads * hd
    ab = p.act_bytes
    ops: list[OpTemplate] = []
    norms = 1 if a.parallel_attn_mlp else 2
    nw = d * ab * (1 if a.norm == "rmsnorm" else 2)      # gamma (and beta)
    ops.append(elementwise("norm", phase, d, reads=2, writes=2, flops_per_elem=5, bytes_per_elem=ab,
                           count=L * norms, launches=1, sharded=False, weight_bytes=nw))  # fused with residual add
    ff_in = a.d_ff * (2 if a.gated_mlp else 1)
    ops += linear_extras(("quant", phase), [d, q, d, a.d_ff], p, L)
    ops += weight_gemm("attn_qkv", phase, "tok", d, q + 2 * kv, p, L)
    if a.position == "rope":
        ops.append(elementwise("rope", phase, q + kv, reads=1, writes=1, flops_per_elem=6, bytes_per_elem=ab,
                               count=L, fusible=True))
    ops += attention_layers(a, phase, p)
    ops += weight_gemm("attn_out", phase, "tok", q, d, p, L)
    if a.moe is None:
        ops += weight_gemm("mlp_up", phase, "tok", d, ff_in, p, L)
        ops += weight_gemm("mlp_down", phase, "tok", a.d_ff, d, p, L)
    else:
        e, k = a.moe.n_experts, a.moe.top_k
        ops += weight_gemm("moe_router", phase, "tok", d, e, p, L)
        # FLOPs for the top_k experts each token visits; weight bytes for every expert the batch touches
        for name, kk, nn in (("mlp_up", d, ff_in), ("mlp_down", a.d_ff, d)):
            g = weight_gemm(name, phase, "tok", kk, nn, p, L, moe=(k, e))
            ops += [replace(t, flops=t.flops * k, weight_bytes=t.weight_bytes * e, act_bytes=t.act_bytes * k,
                            vflops=t.vflops * k) for t in g]
    ops.append(elementwise("mlp_act", phase, a.d_ff, reads=2 if a.gated_mlp else 1, writes=1, flops_per_elem=8,
                           bytes_per_elem=ab, count=L * (a.moe.top_k if a.moe else 1), fusible=True))
    ops.append(OpTemplate("allreduce", phase, "comm", 2 * L, flops=mono(), weight_bytes=mono(),
                          act_bytes=mono(tok=d * ab), kv_bytes=mono(), sharded=False))
    return ops


def attention_layers(a: DecoderArch, phase: str, p: Precision) -> list[OpTemplate]:
    """Full-attention layers, or sliding-window and global layers where the model mixes them (Gemma 3)."""
    L = a.n_layers
    if a.sliding_window is None:
        return [attention(a, phase, p, L, None)]
    if a.global_attention_every is None:
        return [attention(a, phase, p, L, a.sliding_window)]
    n_global = L // a.global_attention_every
    return [attention(a, phase, p, L - n_global, a.sliding_window), attention(a, phase, p, n_global, None)]


def decoder_ops(a: DecoderArch, phase: str, p: Precision) -> list[OpTemplate]:
    """Every op of one forward step of the whole model, in execution order."""
    ab = p.act_bytes
    ops = [OpTemplate("embed", phase, "vector", 1, flops=mono(), weight_bytes=mono(), kv_bytes=mono(),
                      act_bytes=mono(tok=2 * a.d_model * ab), sharded=False)]   # gather rows, write
    ops += layer_ops(a, phase, p)
    ops.append(elementwise("norm", phase, a.d_model, reads=1, writes=1, flops_per_elem=5, bytes_per_elem=ab,
                           count=1, sharded=False, weight_bytes=a.d_model * ab * (1 if a.norm == "rmsnorm" else 2)))
    # logits only for the last position of each sequence (TensorRT-LLM / vLLM gather before lm_head);
    # the head stays 16-bit in every scheme here, as SmoothQuant and TensorRT-LLM keep it.
    ops.append(gemm("lm_head", phase, "seq", a.d_model, a.vocab_size, w_bytes=ab, a_in_bytes=ab,
                    a_out_bytes=4.0, count=1, dtype=p.attn_dtype))
    return ops
