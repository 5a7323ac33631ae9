"""The roofline combination of compute and memory time, hand-computed on one GEMM."""
import numpy as np
import pytest

from planner.efficiency import EngineEff, PrecisionEff
from planner.ops import gemm
from planner.roofline import HwArrays, compile_ops, evaluate_phase

ENG = EngineEff(gemm_compute_frac=0.5, conv_compute_frac=0.5, attn_compute_frac=0.5, vector_compute_frac=0.5,
                mem_frac=0.8, link_frac=1.0, launch_overhead_s=1e-6, step_overhead_s=0.0, overlap_p=64,
                fused_elementwise_frac=0.0)
HW = HwArrays(*(np.array([x]) for x in (1e15, 1e15, 1e13, 2e12, 1e11, 1.0, 1.0)))


def _one_gemm(prec, m=256):
    c = compile_ops([gemm("mlp_up", "prefill", "tok", 4096, 4096, w_bytes=2, a_in_bytes=2, a_out_bytes=2, count=1)],
                    "bf16")
    return evaluate_phase(c, HW, ENG, prec, m, 1, 0, 1, 0.0)


def test_compute_and_memory_time_hand_computed():
    r = _one_gemm(PrecisionEff(gemm_scale=1.0, basis="t"))
    flops, byts = 2 * 256 * 4096 * 4096, 4096 * 4096 * 2 + 256 * 4096 * 4
    assert r.compute_time[0, 0] == pytest.approx(flops / (1e15 * 0.5))
    assert r.memory_time[0, 0] == pytest.approx(byts / (2e12 * 0.8))
    # p = 64: within 1 % of the plain roofline max, plus one launch
    assert r.op_time[0, 0] == pytest.approx(max(r.compute_time[0, 0], r.memory_time[0, 0]) + 1e-6, rel=0.01)


def test_scheme_overlap_exponent_overrides_engine():
    r = _one_gemm(PrecisionEff(gemm_scale=1.0, overlap_p=1.0, basis="t"))
    assert r.op_time[0, 0] == pytest.approx(r.compute_time[0, 0] + r.memory_time[0, 0] + 1e-6)


def test_bound_label():
    assert _one_gemm(PrecisionEff(gemm_scale=1.0, basis="t"), m=1).bound()[0, 0] == "memory"
    assert _one_gemm(PrecisionEff(gemm_scale=1.0, basis="t"), m=4096).bound()[0, 0] == "compute"


def test_small_m_efficiency_table_hand_computed():
    """A scheme's measured efficiency by FLOPs per weight byte (2M / bytes per weight) divides the compute rate;
    interpolated in log intensity, clamped at the ends, and 1 without a table."""
    table = ((1.0, 2.0), (16.0, 0.25), (256.0, 1.0))
    prec = PrecisionEff(gemm_scale=1.0, eff_by_intensity=table, basis="t")
    plain = _one_gemm(PrecisionEff(gemm_scale=1.0, basis="t"), m=16)
    # M = 16 with 2-byte weights: 2 * 16 / 2 = 16 FLOPs per weight byte -> efficiency 0.25 exactly
    assert _one_gemm(prec, m=16).compute_time[0, 0] == pytest.approx(plain.compute_time[0, 0] / 0.25)
    # M = 64: intensity 64, halfway between 16 and 256 in log -> 0.625
    plain64 = _one_gemm(PrecisionEff(gemm_scale=1.0, basis="t"), m=64)
    assert _one_gemm(prec, m=64).compute_time[0, 0] == pytest.approx(plain64.compute_time[0, 0] / 0.625)
    # M = 4096: beyond the table, clamped at its last entry (1.0)
    big = _one_gemm(PrecisionEff(gemm_scale=1.0, basis="t"), m=4096)
    assert _one_gemm(prec, m=4096).compute_time[0, 0] == pytest.approx(big.compute_time[0, 0])
    assert _one_gemm(prec, m=16).memory_time[0, 0] == pytest.approx(plain.memory_time[0, 0])


def test_table_must_ascend():
    with pytest.raises(ValueError, match="ascending"):
        PrecisionEff(gemm_scale=1.0, eff_by_intensity=((16.0, 0.5), (4.0, 0.9)), basis="t")
    with pytest.raises(ValueError, match="ascending"):
        PrecisionEff(gemm_scale=1.0, eff_by_intensity=((4.0, 0.0),), basis="t")


def test_gemms_kept_in_16_bit_use_the_16_bit_efficiencies():
    """A w8a8 model's lm_head stays 16-bit: it streams at the 16-bit scheme's rate (prec16), not the int8 one."""
    ops = [gemm("mlp_up", "decode", "seq", 4096, 4096, w_bytes=1, a_in_bytes=1, a_out_bytes=2, count=1),
           gemm("lm_head", "decode", "seq", 4096, 32000, w_bytes=2, a_in_bytes=2, a_out_bytes=4, count=1,
                dtype="fp16")]
    c = compile_ops(ops, "fp16")
    int8 = PrecisionEff(gemm_scale=1.0, mem_scale=0.5, basis="t")
    b16 = PrecisionEff(gemm_scale=1.0, mem_scale=0.25, basis="t")
    r = evaluate_phase(c, HW, ENG, int8, 1, 1, 0, 1, 0.0, prec16=b16)
    base = evaluate_phase(c, HW, ENG, PrecisionEff(gemm_scale=1.0, basis="t"), 1, 1, 0, 1, 0.0)
    assert r.memory_time[0, 0] == pytest.approx(base.memory_time[0, 0] / 0.5)
    assert r.memory_time[1, 0] == pytest.approx(base.memory_time[1, 0] / 0.25)
    # without prec16 the kept GEMM gets neutral factors (the published calibration's behaviour)
    r0 = evaluate_phase(c, HW, ENG, int8, 1, 1, 0, 1, 0.0)
    assert r0.memory_time[1, 0] == pytest.approx(base.memory_time[1, 0])


def test_pooling_runs_at_its_own_measured_rate():
    """Pool ops count their whole window (outputs x kernel area) and run at pool_compute_frac of the vector peak."""
    from planner.arch.cnn import cnn_layers
    from planner.arch.vision import layer_ops
    from planner.catalog import load_model
    from planner.quant import load_precision
    arch = load_model("densenet-121").arch
    layers = cnn_layers(arch)
    ops = layer_ops(layers, load_precision("fp32"))
    stem = next(i for i, lay in enumerate(layers) if lay.kind == "pool")
    assert ops[stem].kind == "pool"
    assert ops[stem].vflops[4] == 64 * 56 * 56 * 9          # 3x3/2 max-pool of 64 x 112 x 112, per image (monomial B)
    eng = ENG.model_copy(update={"pool_compute_frac": 0.01})
    c = compile_ops([ops[stem]], "fp32")
    r = evaluate_phase(c, HW, eng, PrecisionEff(gemm_scale=1.0, basis="t"), 8, 1, 1, 1, 0.0)
    assert r.compute_time[0, 0] == pytest.approx(8 * 64 * 56 * 56 * 9 / (1e13 * 0.01))
    r2 = evaluate_phase(c, HW, ENG, PrecisionEff(gemm_scale=1.0, basis="t"), 8, 1, 1, 1, 0.0)
    assert r2.compute_time[0, 0] == pytest.approx(8 * 64 * 56 * 56 * 9 / (1e13 * 0.5))   # None: vector fraction


def test_measured_eager_op_overhead_replaces_launches_per_call():
    """A profile's fixed cost per call of an eager small op replaces launches x launch overhead for that op only,
    times the op's count (here: 2 norms per layer x 32 layers of Llama-2-7B's decode step)."""
    from planner.arch.decoder import decoder_ops
    from planner.catalog import load_model
    from planner.quant import load_precision
    ops = decoder_ops(load_model("llama-2-7b").arch, "decode", load_precision("fp32"))
    c = compile_ops(ops, "fp32")
    prec = PrecisionEff(gemm_scale=1.0, basis="t")
    base = evaluate_phase(c, HW, ENG, prec, 1, 1, 136, 1, 0.0)
    eng = ENG.model_copy(update={"op_overhead_s": (("norm", 1e-4), ("rope", 2e-4))})
    r = evaluate_phase(c, HW, eng, prec, 1, 1, 136, 1, 0.0)
    for i, o in enumerate(ops):
        want = {"norm": 1e-4, "rope": 2e-4}.get(o.name)
        if want is None:
            assert r.op_time[i, 0] == base.op_time[i, 0]
            continue
        assert r.overhead_time[i, 0] == pytest.approx(want * o.count)
        assert r.op_time[i, 0] - base.op_time[i, 0] == pytest.approx(want * o.count - o.launches * o.count * 1e-6)
    assert sum(o.count for o in ops if o.name == "norm") == 65        # 2 x 32 layers + the final norm


def test_measured_eager_op_body_scale_multiplies_that_ops_compute_and_memory_time():
    """An eager framework's unfused small op (RMSNorm as square, mean, rsqrt, multiplies) moves a measured
    multiple of the fused kernel's bytes: its compute and memory times, and so its body time, scale by that
    factor; its overhead and every other op stay."""
    from planner.arch.decoder import decoder_ops
    from planner.catalog import load_model
    from planner.quant import load_precision
    ops = decoder_ops(load_model("llama-2-7b").arch, "prefill", load_precision("fp32"))
    c = compile_ops(ops, "fp32")
    prec = PrecisionEff(gemm_scale=1.0, basis="t")
    base = evaluate_phase(c, HW, ENG, prec, 8, 128, 64, 1, 0.0)
    r = evaluate_phase(c, HW, ENG.model_copy(update={"op_body_scale": (("norm", 3.0), ("rope", 0.5))}),
                       prec, 8, 128, 64, 1, 0.0)
    for i, o in enumerate(ops):
        f = {"norm": 3.0, "rope": 0.5}.get(o.name, 1.0)
        assert r.compute_time[i, 0] == pytest.approx(base.compute_time[i, 0] * f)
        assert r.memory_time[i, 0] == pytest.approx(base.memory_time[i, 0] * f)
        assert r.overhead_time[i, 0] == base.overhead_time[i, 0]
        body, base_body = r.op_time[i, 0] - r.overhead_time[i, 0], base.op_time[i, 0] - base.overhead_time[i, 0]
        assert body == pytest.approx(base_body * f)


def test_eager_fixed_costs_reach_vision_transformer_ops_but_not_cnn_ones():
    """The measured per-call cost of the small ops (RMSNorm + residual, SiLU gate) applies to a ViT's LayerNorms
    and GELU too (eager torch ran ViT-B/16's LayerNorms at 0.37 ms per call on this project's CPU, 3x their
    body); not that of a decode step's attention to the encoder's attention, whose fixed costs its own measured
    rate holds; the body factors stay with the decoder's own code, and a CNN's batch norms (one aten kernel
    each) keep the roofline's launch."""
    from planner.arch.vision import cnn_ops, vit_ops
    from planner.catalog import load_model
    from planner.quant import load_precision
    prec = PrecisionEff(gemm_scale=1.0, basis="t")
    eng = ENG.model_copy(update={"op_body_scale": (("norm", 3.0), ("mlp_act", 2.0)),
                                 "op_overhead_s": (("norm", 1e-3), ("mlp_act", 2e-3), ("attn_score", 3e-3))})
    ops, _ = vit_ops(load_model("vit-b16").arch, load_precision("fp32"))
    c = compile_ops(ops, "fp32")
    base = evaluate_phase(c, HW, ENG, prec, 8, 197, 197, 1, 0.0)
    r = evaluate_phase(c, HW, eng, prec, 8, 197, 197, 1, 0.0)
    for i, o in enumerate(ops):
        per_call = {"norm": 1e-3, "mlp_act": 2e-3}.get(o.name)
        body, base_body = r.op_time[i, 0] - r.overhead_time[i, 0], base.op_time[i, 0] - base.overhead_time[i, 0]
        assert body == pytest.approx(base_body)                          # no body factor in the vision phase
        want = per_call * o.count if per_call else base.overhead_time[i, 0]
        assert r.overhead_time[i, 0] == pytest.approx(want)
    assert sum(o.count for o in ops if o.name == "norm") == 2 * 12 + 1  # every LayerNorm, the final one too
    cops, _ = cnn_ops(load_model("densenet-121").arch, load_precision("fp32"))
    cc = compile_ops(cops, "fp32")
    assert any(o.name == "norm" for o in cops)
    assert np.array_equal(evaluate_phase(cc, HW, eng, prec, 8, 1, 1, 1, 0.0).op_time,
                          evaluate_phase(cc, HW, ENG, prec, 8, 1, 1, 1, 0.0).op_time)


def test_cnn_small_ops_take_their_own_measured_fixed_cost():
    """A CNN's batch norms, ReLUs, pools, concatenations and adds take the fixed cost measured for them in a
    network (keys cnn.<op>) in place of one launch, on top of their bodies; convolutions and the head keep the
    launch (their fixed costs are in their rates); a decoder's norm keeps its own key."""
    from planner.arch.decoder import layer_ops
    from planner.arch.vision import cnn_ops
    from planner.catalog import load_model
    from planner.quant import load_precision
    prec = PrecisionEff(gemm_scale=1.0, basis="t")
    fixed = {"cnn.norm": 3e-5, "cnn.act": 1e-5, "cnn.pool": 5e-5, "cnn.concat": 2e-5, "cnn.add": 4e-5}
    eng = ENG.model_copy(update={"op_overhead_s": tuple(fixed.items()) + (("norm", 1e-3),)})
    for model, names in (("densenet-121", {"norm", "act", "pool", "concat"}), ("resnet-50", {"norm", "act", "pool", "add"})):
        ops, _ = cnn_ops(load_model(model).arch, load_precision("fp32"))
        c = compile_ops(ops, "fp32")
        r, base = (evaluate_phase(c, HW, e, prec, 1, 1, 1, 1, 0.0) for e in (eng, ENG))
        assert {o.name for o in ops if o.overhead_key} == names
        for i, o in enumerate(ops):
            want = fixed[f"cnn.{o.name}"] if o.overhead_key else 1e-6
            assert r.overhead_time[i, 0] == pytest.approx(want)
            assert r.op_time[i, 0] - r.overhead_time[i, 0] == pytest.approx(base.op_time[i, 0] - base.overhead_time[i, 0])
    # DenseNet-121's batch norms: the stem's, two in each of 58 dense layers, three transitions', the final one
    ops, _ = cnn_ops(load_model("densenet-121").arch, load_precision("fp32"))
    assert sum(o.name == "norm" for o in ops) == 121
    dec = layer_ops(load_model("llama-2-7b").arch, "decode", load_precision("fp32"))
    c = compile_ops(dec, "fp32")
    i = next(i for i, o in enumerate(dec) if o.name == "norm")
    assert evaluate_phase(c, HW, eng, prec, 1, 1, 16, 1, 0.0).overhead_time[i, 0] == pytest.approx(1e-3 * dec[i].count)


def test_body_scales_are_measured_growth_over_roofline_growth():
    from planner.measure.eager_ops import body_scales
    bench = {"tokens": [128, 1024], "seconds": {"norm": [1e-3, 5e-3], "rope": [2e-3, 2e-3], "mlp_act": [1e-4, 1e-1]}}
    got = dict(body_scales(bench, lambda name, m: m * 1e-6))
    # (5 - 1) ms over (1024 - 128) us; rope did not grow (noise): no factor; mlp_act clipped at 50
    assert got == {"norm": pytest.approx(4e-3 / 896e-6), "mlp_act": 50.0}


@pytest.mark.parametrize("bad", [(("norm", 0.0),), (("norm", 1e3),), (("norm", 2.0), ("norm", 3.0))])
def test_eager_op_body_scale_is_validated(bad):
    with pytest.raises(ValueError, match="op_body_scale"):
        EngineEff.model_validate({**ENG.model_dump(), "op_body_scale": bad})


@pytest.mark.parametrize("bad", [(("norm", -1e-6),), (("norm", 0.5),), (("norm", 1e-4), ("norm", 2e-4))])
def test_eager_op_overhead_is_validated(bad):
    with pytest.raises(ValueError, match="op_overhead_s"):
        EngineEff.model_validate({**ENG.model_dump(), "op_overhead_s": bad})


def _one_conv():
    from planner.ops import OpTemplate, mono
    # 1 GFLOP and 1 MB of fp32 weights per image: 1000 FLOPs per weight byte per image in the batch
    return compile_ops([OpTemplate("conv", "vision", "conv", 1, flops=mono(seq=1e9), weight_bytes=mono(one=1e6),
                                   act_bytes=mono(seq=1e3), kv_bytes=mono())], "fp32")


def test_convolutions_run_at_their_measured_rate_by_intensity():
    """A measured conv table replaces conv_compute_frac x the GEMM small-M table: batch 1 (1000 FLOPs per weight
    byte) sits halfway in log between 100 (0.1) and 10000 (0.4) -> 0.25 of the peak; batch 100 is clamped at
    0.4. The scheme's GEMV fixed cost per call is not a conv's: only the launch overhead is added."""
    prec = PrecisionEff(gemm_scale=1.0, eff_by_intensity=((1.0, 0.01), (1e6, 0.01)), call_overhead_s=1e-3,
                        basis="t")
    eng = ENG.model_copy(update={"conv_eff_by_intensity": ((100.0, 0.1), (10000.0, 0.4))})
    for b, frac in ((1, 0.25), (100, 0.4)):
        r = evaluate_phase(_one_conv(), HW, eng, prec, b, 1, 1, 1, 0.0)
        assert r.compute_time[0, 0] == pytest.approx(b * 1e9 / (1e15 * frac))
        assert r.overhead_time[0, 0] == pytest.approx(1e-6)
    # without a table: conv_compute_frac (0.5) x the small-M table (0.01), still no GEMV fixed cost
    r = evaluate_phase(_one_conv(), HW, ENG, prec, 1, 1, 1, 1, 0.0)
    assert r.compute_time[0, 0] == pytest.approx(1e9 / (1e15 * 0.5 * 0.01))
    assert r.overhead_time[0, 0] == pytest.approx(1e-6)


@pytest.mark.parametrize("field", ["conv_eff_by_intensity", "encoder_attn_eff_by_context"])
@pytest.mark.parametrize("bad", [((100.0, 0.1), (10.0, 0.4)), ((100.0, 0.0),), ((-1.0, 0.5),), ((1.0, 1.5),)])
def test_rate_tables_are_validated(bad, field):
    with pytest.raises(ValueError, match=field):
        EngineEff.model_validate({**ENG.model_dump(), field: bad})


def test_encoder_attention_takes_its_rate_by_keys_attended():
    """A vision encoder's attention reads its fraction of peak from the measured table by FLOPs per activation
    byte, which for the cost model's encoder attention is C / bytes per element: ViT-B/16's 197 tokens in fp32
    at 49.25, Swin-B's 7x7 windows at 12.25. Interpolated in log intensity, as if attn_compute_frac were that
    value; a decoder's causal attention keeps attn_compute_frac, and the measured fixed cost of an LLM decode
    step's attention is not charged to the encoder's (its own fixed costs are in the table's rate)."""
    import math

    from planner.arch.decoder import layer_ops
    from planner.arch.vision import swin_ops, vit_ops
    from planner.catalog import load_model
    from planner.quant import load_precision
    prec = PrecisionEff(gemm_scale=1.0, basis="t")
    fp32 = load_precision("fp32")
    table = ((49 / 4, 0.1), (256 / 4, 0.4))
    eng = ENG.model_copy(update={"encoder_attn_eff_by_context": table, "op_overhead_s": (("attn_score", 1e-3),)})
    e197 = 0.1 + 0.3 * math.log(197 / 49) / math.log(256 / 49)
    for ops, n, want in ((vit_ops(load_model("vit-b16").arch, fp32)[0], 197, e197),
                         (swin_ops(load_model("swin-b").arch, fp32)[0], 3136, 0.1)):
        c = compile_ops(ops, "fp32")
        r = evaluate_phase(c, HW, eng, prec, 1, n, n, 1, 0.0)
        same = evaluate_phase(c, HW, ENG.model_copy(update={"attn_compute_frac": want}), prec, 1, n, n, 1, 0.0)
        rows = [i for i, o in enumerate(ops) if o.kind == "attention"]
        assert rows and all(r.compute_time[i, 0] == pytest.approx(same.compute_time[i, 0]) for i in rows)
        assert all(r.overhead_time[i, 0] == pytest.approx(ops[i].count * 1e-6) for i in rows)   # launches only
    dec = layer_ops(load_model("llama-2-7b").arch, "prefill", fp32)
    c = compile_ops(dec, "fp32")
    i = next(i for i, o in enumerate(dec) if o.kind == "attention")
    assert evaluate_phase(c, HW, eng.model_copy(update={"op_overhead_s": ()}), prec, 1, 128, 128, 1, 0.0) \
        .compute_time[i, 0] == pytest.approx(evaluate_phase(c, HW, ENG, prec, 1, 128, 128, 1, 0.0).compute_time[i, 0])
