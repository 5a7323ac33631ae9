"""Hand-computed FLOPs and bytes of ops and of whole models."""
import numpy as np
import pytest

import planner
from planner.api import model_plan
from planner.arch.decoder import decoder_ops
from planner.ops import expert_coverage, gemm
from planner.quant import PRECISIONS


def test_gemm_4096_cube():
    op = gemm("x", "prefill", "tok", 4096, 4096, w_bytes=2, a_in_bytes=2, a_out_bytes=2, count=1)
    c = op.evaluate(batch=4096, new_tokens=1, context=0)
    assert c.flops == 2 * 4096 ** 3 == 137_438_953_472
    assert c.weight_bytes == 4096 * 4096 * 2 == 33_554_432
    assert c.act_bytes == 2 * 4096 * 4096 * 2            # X in, Y out
    assert c.intensity == pytest.approx(2 * 4096 ** 3 / (3 * 4096 * 4096 * 2))   # 1365.3 FLOP/byte


def _ops(model, phase, precision="bf16"):
    return {o.name: o for o in decoder_ops(planner.load_model(model).arch, phase, PRECISIONS[precision])}


def test_gqa_qkv_width_llama3_70b():
    qkv = _ops("llama-3-70b", "decode")["attn_qkv"]
    c = qkv.evaluate(1, 1, 100)
    # q 8192 + k 1024 + v 1024 (8 KV heads x 128) = 10240 outputs, 80 layers
    assert c.flops == 80 * 2 * 8192 * 10240
    assert c.weight_bytes == 80 * 8192 * 10240 * 2


def test_decode_attention_grows_with_context():
    att = _ops("llama-2-7b", "decode")["attn_score"]
    a1, a2 = att.evaluate(1, 1, 1000), att.evaluate(1, 1, 2000)
    assert a1.flops == 32 * 4 * 4096 * 1000            # QK^T and PV: 2 * 2 * ctx * head_dim * heads, 32 layers
    assert a2.flops == 2 * a1.flops
    # KV read: 2 (K,V) * 32 layers * 32 heads * 128 * 2 bytes = 512 KiB per token of context, + the new token
    assert a1.kv_bytes == 524_288 * 1000 + 524_288
    assert a2.kv_bytes - a1.kv_bytes == 524_288 * 1000


def test_prefill_attention_is_causal_and_quadratic():
    att = _ops("llama-2-7b", "prefill")["attn_score"]
    s = 2048
    c = att.evaluate(1, s, (s + 1) / 2)
    assert c.flops == pytest.approx(32 * 4 * 4096 * s * (s + 1) / 2)


def test_decode_weight_bytes_equal_weights_bf16():
    """One decode step at batch 1 reads every weight once: ~2 bytes per parameter (embedding gathers aside)."""
    plan = model_plan("llama-2-7b", "bf16")
    m = planner.load_model("llama-2-7b")
    read = plan.decode.weight[:, 0].sum()
    emb = 32000 * 4096 * 2
    assert read == pytest.approx(2 * planner.param_count(m) - emb, rel=1e-6)


def test_moe_reads_touched_experts_only():
    up = _ops("mixtral-8x7b", "decode")["mlp_up"]
    one = up.evaluate(1, 1, 10)
    many = up.evaluate(512, 1, 10)
    all_experts = 32 * 8 * 4096 * 14336 * 2 * 2          # layers x experts x d x 2*ff x bytes
    assert one.weight_bytes == pytest.approx(all_experts * 2 / 8)     # one token routes to 2 of 8
    assert many.weight_bytes == pytest.approx(all_experts, rel=1e-6)
    assert one.flops == 32 * 2 * 2 * 4096 * 14336 * 2                 # FLOPs of the 2 active experts only
    assert expert_coverage((2, 8), 0) == 0.0


def test_lm_head_only_last_position_in_prefill():
    head = _ops("llama-2-7b", "prefill")["lm_head"]
    assert head.evaluate(4, 512, 256).flops == 4 * 2 * 4096 * 32000


def test_w4a16_weight_bytes_include_group_scales():
    plan_bf16, plan_w4 = model_plan("llama-2-7b", "bf16"), model_plan("llama-2-7b", "w4a16")
    ratio = plan_w4.decode.weight[:, 0].sum() / plan_bf16.decode.weight[:, 0].sum()
    assert 0.25 < ratio < 0.30            # 0.53 bytes/weight (int4 + fp16 scale and zero per 128) vs 2; lm_head stays 16-bit


def test_densenet_conv_flops_match_reference():
    plan = model_plan("densenet-121", "fp16")
    total = plan.vision.flops[:, 4].sum()                  # per image (monomial B)
    assert total / 2 == pytest.approx(2.86e9, rel=0.02)   # reference §3: 2.86 GMACs @224


def test_vit_b16_flops():
    plan = model_plan("vit-b16", "fp16")
    m = np.array([1.0, 197, 197 * 197, 197, 1])            # one image: B=1, S=C=197 tokens
    flops = (plan.vision.flops @ m).sum()
    # 12 layers x (4 N d^2 + 2 N d mlp + 2 N^2 d) MACs + patch embed + head (reference §8 formula)
    n, d, mlp = 197, 768, 3072
    macs = 12 * (4 * n * d * d + 2 * n * d * mlp + 2 * n * n * d) + 196 * 768 * 768 + 768 * 1000
    assert flops / 2 == pytest.approx(macs, rel=0.01)
