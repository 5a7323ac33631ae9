"""Precision recipes run real kernels that compute the right thing; SmoothQuant's maths; refusals are one-line
PlannerErrors. GPU-only kernels are tested under the `gpu` marker."""
import pytest

torch = pytest.importorskip("torch")

from planner.errors import PlannerError  # noqa: E402
from planner.measure import recipes as rc  # noqa: E402
from planner.measure import smoothquant as sq  # noqa: E402
from planner.measure.models import build_model  # noqa: E402
from planner.specs import ModelSpec  # noqa: E402

TINY_LLM = {"kind": "decoder", "n_layers": 4, "d_model": 64, "n_heads": 4, "n_kv_heads": 2, "d_ff": 96,
            "vocab_size": 128, "gated_mlp": True, "norm": "rmsnorm", "position": "rope", "max_context": 128}


def spec(arch: dict) -> ModelSpec:
    return ModelSpec.model_validate({"id": "tiny", "name": "tiny", "category": "llm", "config_source": "test",
                                     "arch": arch})

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.mark.parametrize("precision,backend,tol", [
    ("w8a8", "onednn", 0.02), ("w8a8-o1", "onednn", 0.02), ("w8a8-o2", "onednn", 0.02), ("w8a8-o2", "fbgemm", 0.03),
    ("w8a8-o1", "int_mm", 0.02), ("w8a8-o2-f32", "auto", 0.03), ("w8a8-f32", "auto", 0.03), ("w8a8", "fbgemm", 0.03),
    ("w8a16", "auto", 0.02), ("bf16", "auto", 0.01),
    ("fp32", "auto", 1e-6)])
def test_cpu_kernels_match_fp32(precision, backend, tol):
    r = rc.make_recipe(precision, "cpu", backend)
    err = rc.linear_check(r, "cpu")
    assert err < tol
    if precision.startswith("w8a8"):
        assert err > 1e-4          # really quantized, not a float fallback


def test_fp32_activation_w8a8_is_fbgemm_with_an_fp32_head():
    """The CPU form of W8A8: int8 GEMMs through fbgemm, everything else (and the cost model's head) in fp32."""
    from planner.arch.decoder import decoder_ops
    from planner.catalog import load_model
    from planner.quant import load_precision
    r = rc.make_recipe("w8a8-o2-f32", "cpu")
    assert (r.act_dtype, r.kv_dtype, r.int8_backend) == (torch.float32, torch.float32, "fbgemm")
    a = load_model("llama-2-7b").arch
    head = next(o for o in decoder_ops(a, "decode", load_precision("w8a8-o2-f32")) if o.name == "lm_head")
    assert head.weight_bytes[0] == a.d_model * a.vocab_size * 4 and head.dtype == "fp32"
    r3 = rc.make_recipe("w8a8-f32", "cpu")           # O3: the calibrated scale, no quant op of its own
    assert (r3.act_dtype, r3.int8_backend, r3.granularity) == (torch.float32, "fbgemm", "per-tensor-static")
    ops3 = decoder_ops(a, "decode", load_precision("w8a8-f32"))
    assert "quant" not in {o.name for o in ops3}
    # O2 neither: fbgemm's dynamic linear takes its range and quantizes inside the GEMM kernel (the profile times it)
    assert "quant" not in {o.name for o in decoder_ops(a, "decode", load_precision("w8a8-o2-f32"))}
    head3 = next(o for o in ops3 if o.name == "lm_head")
    assert head3.weight_bytes[0] == a.d_model * a.vocab_size * 4 and head3.dtype == "fp32"


@pytest.mark.parametrize("precision,device,backend,measured", [
    ("w8a8", "cpu", "auto", "w8a8-f32"), ("w8a8-o3", "cpu", "auto", "w8a8-f32"), ("w8a8-o2", "cpu", "auto", "w8a8-o2-f32"),
    ("w8a8-o1", "cpu", "auto", "w8a8-o1"), ("w8a8", "cpu", "onednn", "w8a8"), ("w8a8", "cpu", "fbgemm", "w8a8"),
    ("w8a8", "cuda", "auto", "w8a8"), ("fp32", "cpu", "auto", "fp32"), ("bf16", "cpu", "auto", "bf16")])
def test_cpu_runs_w8a8_in_its_fbgemm_form_by_default(precision, device, backend, measured):
    assert rc.measured_precision(precision, device, backend) == measured
    note = rc.cpu_form_note(precision, measured)
    assert (note is None) == (measured == precision)
    if note:
        assert measured in note and "fbgemm" in note and "--int8-backend onednn" in note and "\n" not in note


def test_fp32_forms_are_refused_on_cuda():
    for p in rc.FP32_FORMS:
        with pytest.raises(PlannerError, match="CPU form"):
            rc.make_recipe(p, "cuda")


def test_fbgemm_static_kernel_uses_the_calibrated_scale():
    """O3 through fbgemm quantizes with the given scale: a scale 4x too small clips the activations."""
    torch.manual_seed(0)
    lin = torch.nn.Linear(64, 32, bias=False)
    x = torch.randn(8, 64)
    ref = lin(x)
    good = rc.W8A8Linear(lin, "per-tensor-static", "fbgemm", float(x.abs().max()) / 127, torch.float32)
    clipped = rc.W8A8Linear(lin, "per-tensor-static", "fbgemm", float(x.abs().max()) / 127 / 4, torch.float32)
    err = lambda m: float((m(x) - ref).norm() / ref.norm())  # noqa: E731
    assert 1e-4 < err(good) < 0.02 and err(clipped) > 0.1


def test_w4a16_cpu_kernel_error_is_that_of_4_bit_weights():
    err = rc.linear_check(rc.make_recipe("w4a16", "cpu"), "cpu")
    assert 0.02 < err < 0.15      # 4-bit group-128 quantization of Gaussian weights: ~10 % relative error


@pytest.mark.parametrize("precision,backend,msg", [
    ("fp8", "auto", "CUDA"), ("fp16", "auto", "bf16"), ("llm-int8", "auto", "bitsandbytes"),
    ("w8a8-o1", "fbgemm", "not per-token"), ("w8a8", "bogus", "int8 backend"), ("int3", "auto", "no measurement recipe"),
    ("w8a8-o2-f32", "onednn", "through fbgemm"), ("w8a8-f32", "onednn", "through fbgemm")])
def test_refusals_are_planner_errors(precision, backend, msg):
    with pytest.raises(PlannerError, match=msg) as e:
        rc.make_recipe(precision, "cpu", backend)
    assert "\n" not in str(e.value)


def test_smoothing_factors_hand_computed():
    act = torch.tensor([4.0, 1.0])
    w = torch.tensor([[1.0, 4.0], [0.5, -2.0]])      # column maxima 1 and 4
    s = sq.smoothing_factors(act, [w], 0.5)
    assert torch.allclose(s, torch.tensor([2.0, 0.5]))   # sqrt(4)/sqrt(1), sqrt(1)/sqrt(4)
    assert torch.allclose(sq.smoothing_factors(act, [w], 1.0), act)


def test_smoothing_keeps_the_model_function_and_shrinks_outliers():
    m, _, _ = build_model(spec(TINY_LLM), 2, torch.float32, "cpu")
    m.allocate(2, 16)
    with torch.no_grad():                 # make channel 3 an activation outlier, as LLMs have
        for layer in m.layers:
            layer.norm1.weight[3] = 40.0
    tok = torch.randint(0, 128, (2, 8))
    with torch.no_grad():
        before = m(tok, 0)
    calib = lambda: m(tok, 0)  # noqa: E731
    groups = sq.smoothing_groups(m)
    act0 = sq.collect_channel_absmax(m, [g.linears[0] for g in groups], calib)
    sq.smooth_model(m, groups, calib, 0.5)
    act1 = sq.collect_channel_absmax(m, [g.linears[0] for g in groups], calib)
    with torch.no_grad():
        after = m(tok, 0)
    assert torch.allclose(before, after, atol=1e-4, rtol=1e-4)
    ratio = lambda v: float(v.max() / v.median())  # noqa: E731
    assert ratio(act1["layers.0.qkv"]) < ratio(act0["layers.0.qkv"]) / 2


def test_smoothing_lowers_w8a8_error_on_an_outlier_channel():
    torch.manual_seed(0)
    x = torch.randn(64, 32)
    x[:, 5] *= 60                                           # one outlier channel
    w = torch.randn(16, 32) * 0.1
    ref = x @ w.t()

    def err(s):
        xq = sq.fq_activation((x / s)[None], "per-token")[0]
        return float(((xq @ sq.fq_weight_per_channel(w * s).t()) - ref).norm() / ref.norm())
    s = sq.smoothing_factors(x.abs().amax(0), [w], 0.5)
    assert err(s) < err(torch.ones(32)) / 2


def test_fake_quant_per_tensor_static_uses_the_given_scale():
    x = torch.tensor([[[0.5, -1.0, 0.26]]])
    y = sq.fq_activation(x, "per-tensor-static", static_scale=0.25)
    assert torch.equal(y, torch.tensor([[[0.5, -1.0, 0.25]]]))


@pytest.mark.gpu
@cuda
@pytest.mark.parametrize("precision", ["w8a8", "w8a8-o1", "w8a16", "w4a16", "fp16", "bf16"])
def test_cuda_kernels_match_fp32(precision):
    err = rc.linear_check(rc.make_recipe(precision, "cuda"), "cuda")
    assert err < (0.15 if precision == "w4a16" else 0.03)


@pytest.mark.gpu
@cuda
def test_cuda_fp8_scaled_mm():
    if torch.cuda.get_device_capability() < (8, 9):
        pytest.skip("needs sm89+ for FP8")
    assert rc.linear_check(rc.make_recipe("fp8", "cuda"), "cuda") < 0.08


def test_fp8_linear_runs_its_scaled_mm_code_on_the_cpu_kernel():
    """The FP8 recipe is timed only on Hopper, but torch 2.13 has a CPU kernel for torch._scaled_mm: the module the
    GPU runs (E4M3 weights and activations, dequant scales, bias, M not a multiple of 16: torch checks K and N only) is checked here, in
    CI, against fp32; the rounding error of E4M3 (3 mantissa bits) is a few per cent, never zero."""
    if not hasattr(torch, "float8_e4m3fn"):
        pytest.skip("no float8 dtype in this torch")
    torch.manual_seed(0)
    lin = torch.nn.Linear(256, 96, bias=True)
    x = torch.randn(5, 256)                      # M = 5: no padding (the kernel refuses only K, N % 16)
    mod = rc.Fp8Linear(lin, float(x.abs().max()))
    assert mod.w8.dtype == torch.float8_e4m3fn and float(mod.w8.float().abs().max()) == rc.Fp8Linear.E4M3_MAX
    y = mod(x.to(torch.bfloat16))
    ref = lin(x)
    assert y.shape == (5, 96) and y.dtype == torch.bfloat16
    err = float((y.float() - ref).norm() / ref.norm())
    assert 1e-3 < err < 0.08
    # the bias is added once (a doubled or missing bias would move the output by its norm)
    no_bias = torch.nn.Linear(256, 96, bias=False)
    no_bias.weight.data.copy_(lin.weight.data)
    y0 = rc.Fp8Linear(no_bias, float(x.abs().max()))(x.to(torch.bfloat16))
    assert torch.allclose((y - y0).float().mean(0), lin.bias.data, atol=0.02)


@pytest.mark.parametrize("granularity", ["per-tensor-static", "per-tensor-dynamic"])
def test_fbgemm_linear_records_its_gemm_shape_for_the_flop_count(granularity):
    """fbgemm's linears take a packed weight whose shape record_shapes cannot see; the recipe records M, K, N in
    an event around the kernel and the profiler's FLOP count reads 2*M*K*N from it."""
    from torch.profiler import profile

    from planner.measure.profiler import kernel_flops
    lin = torch.nn.Linear(96, 40, bias=False)
    mod = rc.W8A8Linear(lin, granularity, "fbgemm", 4.0 / 127, torch.float32)
    with profile(record_shapes=True, with_flops=True) as prof:
        mod(torch.randn(3, 5, 96))
    counted = sum(kernel_flops(e.name, e.input_shapes) for e in prof.events())
    assert counted == 2 * 15 * 96 * 40
    assert kernel_flops("radplan.gemm_shape[bad]", []) == 0.0


@pytest.mark.parametrize("granularity", ["per-tensor-static", "per-token"])
def test_int_mm_epilogue_writes_the_dequantized_output_in_one_pass(granularity):
    """The CUDA W8A8 path (torch._int_mm, which runs on CPU too) dequantizes int32 x fp32 scales straight into the
    output dtype: the same numbers as (acc.float() * (s_x * s_w)).to(out), without the fp32 [M, N] copies; the
    static scale is a buffer made once (a Python float turned into a CUDA tensor per call syncs the stream)."""
    torch.manual_seed(0)
    lin = torch.nn.Linear(64, 48, bias=True)
    static = 3.0 / 127 if granularity == "per-tensor-static" else None
    mod = rc.W8A8Linear(lin, granularity, "int_mm", static, torch.bfloat16)
    x = torch.randn(20, 64)                                  # M = 20 > 16, as _int_mm wants on CUDA
    if static is not None:
        assert mod.static_t.dtype == torch.float32 and float(mod.static_t) == pytest.approx(static)
        assert "static_t" in dict(mod.named_buffers())
        s = mod.static_t
    else:
        s = rc.act_scale(x, "per-token", None)
    xq = rc.quantize_s8(x, s)
    acc = torch._int_mm(xq, mod.w_t)
    ref = (acc.float() * (s * mod.w_scale)).to(torch.bfloat16) + lin.bias.data.to(torch.bfloat16)
    y = mod._gemm_q(xq, s)
    assert y.dtype == torch.bfloat16 and torch.equal(y, ref)
    # and the whole module is an int8 approximation of the fp32 linear, not an exact copy of it
    err = float((mod(x).float() - lin(x)).norm() / lin(x).norm())
    assert 1e-4 < err < 0.05


def test_quantize_does_not_touch_its_input():
    """The quantizers scale one fp32 copy in place: an fp32 input (whose .float() is itself) stays as it was."""
    x = torch.tensor([[0.5, -1.0, 0.26, 200.0]])
    before = x.clone()
    assert rc.quantize_s8(x, torch.tensor(0.25)).tolist() == [[2, -4, 1, 127]]
    assert rc.quantize_u8(x, torch.tensor(0.25)).tolist() == [[130, 124, 129, 255]]
    assert torch.equal(x, before)
