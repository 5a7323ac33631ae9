"""A device profile -> the roofline of that device: the GEMM sweep fit (small-M efficiency table and overlap
exponent) and the device-state probe scaling, on synthetic sweeps whose answer is known. Pure: no torch."""
import pytest

from planner.measure.microbench import gemm_fit, gemm_fit_mdape, roofline_for_profile
from planner.measure.probe import device_state

PEAK, STREAM, P = 100e9, 10e9, 2.0
EFF = {1: 2.0, 8: 0.3, 32: 0.6, 128: 1.0, 512: 1.0, 1024: 1.0}
SHAPES = ((4096, 4096), (4096, 11008), (11008, 4096))


def _time(m, k, n, wb=4, ab=4):
    tc = 2.0 * m * k * n / (PEAK * EFF[m])
    tm = (k * n * wb + m * (k + n) * ab) / STREAM
    return (tc ** P + tm ** P) ** (1 / P)


def _profile():
    pts = [{"m": m, "k": k, "n": n, "seconds": _time(m, k, n), "median_s": _time(m, k, n),
            "weight_bytes": k * n * 4, "act_bytes": m * (k + n) * 4} for k, n in SHAPES for m in EFF]
    g = {"points": pts, "achievable_flops_s": PEAK, "best_flops_s": PEAK, "stream_bytes_s": STREAM}
    return {"version": 1, "device": "cpu-test-1t", "date": "2026-11-22T00:00:00+00:00",
            "meta": {"kind": "cpu", "name": "test cpu", "host_memory_bytes": 1 << 34},
            "gemm": {"fp32": g}, "memory": {"read_bytes_s": STREAM, "copy_bytes_s": STREAM},
            "launch_overhead_s": 0.0, "vector_flops_s": 1e9, "attention_flops_s": {"fp32": 50e9},
            "conv_flops_s": {"fp32": 80e9}, "pool_elems_s": {"fp32": 0.2e9}, "overlap_p": 2.0}


def test_sweep_fit_recovers_the_generating_roofline():
    f = gemm_fit(_profile(), "fp32")
    assert f["overlap_p"] == P
    table = dict(f["eff_by_intensity"])
    for m, e in EFF.items():                       # intensity of fp32 weights: 2M / 4 FLOPs per byte
        assert table[2 * m / 4] == pytest.approx(e, rel=1e-6)
    assert f["mdape_pct"] < 1e-6 and f["points"] == 18
    assert gemm_fit_mdape(_profile()) < 1e-6


def test_profile_calibration_carries_the_fit():
    acc, cal = roofline_for_profile(_profile())
    fp32 = cal.precisions["fp32"]
    assert fp32.overlap_p == P and dict(fp32.eff_by_intensity)[16.0] == pytest.approx(0.6)
    eng = cal.engines["eager"]
    assert eng.pool_compute_frac == pytest.approx(0.2e9 / PEAK)
    assert eng.conv_compute_frac == pytest.approx(0.8) and eng.attn_compute_frac == pytest.approx(0.5)
    assert acc.peak_dense.fp32_tflops * 1e12 == pytest.approx(PEAK)


def _probe(scale_m1, scale_m128):
    return {"scheme": "fp32", "k": 4096, "n": 4096, "timer": "cpu-thread",
            "points": [{"m": 1, "seconds": _time(1, 4096, 4096) * scale_m1},
                       {"m": 128, "seconds": _time(128, 4096, 4096) * scale_m128}]}


def test_device_state_is_the_probe_to_profile_ratio():
    # the profile's reference: median over the swept shapes of time per byte (M=1) or per FLOP (M=128); on this
    # synthetic roofline the shapes' figures agree within 0.1 %, so the ratios are the probe's scale factors
    prof = _profile()
    st = device_state(prof, [_probe(1.25, 1.25)])
    assert st["memory"] == pytest.approx(0.8, rel=1e-3) and st["compute"] == pytest.approx(0.8, rel=1e-3)
    st = device_state(prof, [_probe(1.0, 1.25), _probe(1.5, 1.1), _probe(1.2, 1.3)])   # median per point
    assert st["memory"] == pytest.approx(1 / 1.2, rel=1e-3) and st["compute"] == pytest.approx(0.8, rel=1e-3)
    assert st["samples"] == 3
    assert device_state(prof, None) is None and device_state(prof, []) is None
    odd = _probe(1, 1)
    odd["k"] = 512                                  # a point the profile never measured: no state, not a guess
    assert device_state(prof, [odd]) is None
    amx = _probe(1, 1)
    amx["scheme"] = "int8"                          # only the device's regular kernel (fp32 on CPU) is a state
    assert device_state(prof, [amx]) is None


def test_state_scales_peaks_and_bandwidth_only():
    prof = _profile()
    acc0, cal0 = roofline_for_profile(prof)
    acc, cal = roofline_for_profile(prof, {"compute": 0.8, "memory": 0.9, "basis": "t"})
    assert acc.peak_dense.fp32_tflops == pytest.approx(acc0.peak_dense.fp32_tflops * 0.8)
    assert acc.bandwidth_bytes_s == pytest.approx(acc0.bandwidth_bytes_s * 0.9)
    assert cal.precisions == cal0.precisions and cal.engines == cal0.engines
    assert "compute x0.800" in acc.sources["peak_dense"]


def test_a_run_through_fbgemm_is_predicted_from_the_fbgemm_sweep():
    from planner.measure.microbench import int8_scheme_for
    prof = _profile()
    g = prof["gemm"]["fp32"]
    prof["gemm"]["int8"] = {**g, "achievable_flops_s": 4 * PEAK}
    prof["gemm"]["int8-fbgemm"] = {**g, "achievable_flops_s": 2 * PEAK}
    assert int8_scheme_for(prof, "fbgemm") == "int8-fbgemm"
    assert int8_scheme_for(prof, "onednn") == "int8" and int8_scheme_for(prof, None) == "int8"
    assert roofline_for_profile(prof)[0].peak_dense.int8_tops * 1e12 == pytest.approx(4 * PEAK)
    assert roofline_for_profile(prof, int8_scheme="int8-fbgemm")[0].peak_dense.int8_tops * 1e12 == pytest.approx(2 * PEAK)


def test_device_state_reference_is_not_one_noisy_point():
    """One sweep point whose median a noisy minute inflated by 35 % (the probe's own) does not move the state:
    the reference is the median over the swept shapes."""
    prof = _profile()
    for p in prof["gemm"]["fp32"]["points"]:
        if (p["k"], p["n"]) == (4096, 4096) and p["m"] in (1, 128):
            p["median_s"] *= 1.35
    st = device_state(prof, [_probe(1.0, 1.0)])
    assert st["memory"] == pytest.approx(1.0, rel=1e-3) and st["compute"] == pytest.approx(1.0, rel=1e-3)


def test_device_state_prefers_the_profiles_reference_probes():
    """A profile that kept reference probes (taken the way runs take them) is compared probe to probe: the
    sweep's own times no longer matter."""
    prof = _profile()
    prof["probe_reference"] = [_probe(1.1, 1.2), _probe(1.3, 1.0), _probe(1.2, 1.4)]   # medians 1.2 and 1.2
    st = device_state(prof, [_probe(1.5, 1.5)])
    assert st["memory"] == pytest.approx(1.2 / 1.5) and st["compute"] == pytest.approx(1.2 / 1.5)
    assert "3 reference probes" in st["basis"]


def test_validation_scales_to_the_device_state_only_for_profiles_probed_across_their_sweep():
    from planner.validate import scales_by_default
    assert scales_by_default({"probe_reference_per_round": True}) is True
    assert scales_by_default({"probe_reference": [_probe(1.0, 1.0)]}) is False    # a burst after the sweep


def _probe_at(scale_mem, scale_cmp, mem=(1, 4096, 11008), cmp=(128, 4096, 4096)):
    """A probe as runs take it since 2026-11-23: M, K, N on each point."""
    return {"scheme": "fp32", "timer": "wall",
            "points": [{"m": m, "k": k, "n": n, "seconds": _time(m, k, n) * sc}
                       for (m, k, n), sc in ((mem, scale_mem), (cmp, scale_cmp))]}


def test_probe_points_are_an_mlp_gemv_and_a_square_gemm():
    from planner.measure.microbench import FULL_MS, FULL_SHAPES, QUICK_MS, QUICK_SHAPES
    from planner.measure.probe import probe_plan, probe_plan_for_sweep
    full = ("fp32", ((1, 4096, 11008), (128, 4096, 4096)))
    assert probe_plan(_profile(), "cpu") == full == probe_plan_for_sweep(FULL_MS, FULL_SHAPES, "cpu")
    assert probe_plan(None, "cpu") == full and probe_plan(None, "cuda")[0] == "bf16"
    quick = ("fp32", ((1, 512, 512), (64, 512, 512)))      # a sweep without those points: its first shape
    assert probe_plan_for_sweep(QUICK_MS, QUICK_SHAPES, "cpu") == quick
    prof = _profile()
    prof["gemm"]["fp32"]["points"] = [p for p in prof["gemm"]["fp32"]["points"] if (p["k"], p["n"]) == (11008, 4096)]
    assert probe_plan(prof, "cpu") == ("fp32", ((1, 11008, 4096), (1024, 11008, 4096)))


def test_device_state_of_probes_with_two_shapes():
    prof = _profile()
    st = device_state(prof, [_probe_at(1.25, 1.0), _probe_at(1.25, 1.6), _probe_at(2.0, 1.6)])
    assert st["memory"] == pytest.approx(0.8, rel=1e-3) and st["compute"] == pytest.approx(1 / 1.6, rel=1e-3)
    assert "M=1 K=4096 N=11008 (memory), M=128 K=4096 N=4096 (compute)" in st["basis"]
    # a profile probed before 2026-11-23 holds reference probes of the 4096 x 4096 GEMV only: the new memory
    # point is read off its sweep, the compute point off its reference probes (times 1.5 here)
    prof["probe_reference"] = [_probe(1.0, 1.5)]
    st = device_state(prof, [_probe_at(1.0, 1.0)])
    assert st["memory"] == pytest.approx(1.0, rel=1e-3) and st["compute"] == pytest.approx(1.5)
    assert "swept shapes) (memory), median of the profile's 1 reference probes (compute)" in st["basis"]


def test_sweep_fit_is_memoised_on_the_points_not_the_dict():
    """gemm_fit is cached on the sweep's content: the same dict edited in place is fitted anew."""
    prof = _profile()
    f1 = gemm_fit(prof, "fp32")
    for p in prof["gemm"]["fp32"]["points"]:
        if p["m"] == 8:
            p["seconds"] *= 2.0                     # M=8 twice as slow: its efficiency entry drops
    f2 = gemm_fit(prof, "fp32")
    e1, e2 = dict(f1["eff_by_intensity"])[16 / 4], dict(f2["eff_by_intensity"])[16 / 4]
    assert e2 < 0.6 * e1 and e1 == pytest.approx(0.3, rel=1e-6)
    assert gemm_fit(_profile(), "fp32") == f1       # an equal sweep: the same fit


def test_an_unsteady_profile_is_told_apart():
    """The sweep's own time at a probe point against the reference probes of the same rounds: ~1 in most
    profiles here; 1.15 (the 1-thread profile of 01:22 UTC) is flagged, with the point and the ratio."""
    from planner.measure.probe import sweep_vs_reference, unsteady_note
    prof = _profile()
    prof["probe_reference"] = [_probe_at(1.0, 1.0), _probe_at(1.0, 1.0)]
    assert sweep_vs_reference(prof) is None                  # reference probes not taken per round: no verdict
    prof["probe_reference_per_round"] = True
    r = sweep_vs_reference(prof)
    assert r["memory"] == pytest.approx(1.0) and r["compute"] == pytest.approx(1.0) and unsteady_note(prof) is None
    for p in prof["gemm"]["fp32"]["points"]:
        if (p["m"], p["k"], p["n"]) == (128, 4096, 4096):
            p["median_s"] = p["seconds"] * 1.15
    assert sweep_vs_reference(prof)["compute"] == pytest.approx(1.15)
    note = unsteady_note(prof)
    assert "compute point x1.15" in note and "memory" not in note and "planner microbench" in note


def _kernel_probe(scale, scheme="int8-fbgemm"):
    return {"scheme": scheme, "timer": "wall",
            "points": [{"m": 128, "k": 4096, "n": 4096, "seconds": _time(128, 4096, 4096) * scale}]}


def _with_int8(prof):
    prof["gemm"]["int8-fbgemm"] = {**prof["gemm"]["fp32"], "achievable_flops_s": 3 * PEAK}
    return prof


def test_int8_runs_probe_their_own_kernel():
    from planner.measure.probe import kernel_probe_plan
    prof = _with_int8(_profile())
    assert kernel_probe_plan(prof, "int8-fbgemm") == ("int8-fbgemm", ((128, 4096, 4096),))
    assert kernel_probe_plan(None, "int8-fbgemm") is not None          # no profile yet: probe anyway
    assert kernel_probe_plan(prof, "int8") is None                    # oneDNN/AMX: not probed
    assert kernel_probe_plan(prof, None) is None                      # fp32 runs: no kernel probe
    assert kernel_probe_plan(_profile(), "int8-fbgemm") is None       # a profile without that sweep


def test_kernel_state_is_the_int8_probe_to_profile_ratio():
    from planner.measure.probe import kernel_state
    prof = _with_int8(_profile())
    # against the sweep (median over the M=128 shapes: the synthetic shapes agree within 0.1 %)
    ks = kernel_state(prof, [_kernel_probe(1.0), _kernel_probe(1.5), _kernel_probe(1.25)])
    assert ks["scheme"] == "int8-fbgemm" and ks["compute"] == pytest.approx(0.8, rel=1e-3) and ks["samples"] == 3
    # against the profile's per-round kernel probes when it has them
    prof["kernel_probe_reference"] = [_kernel_probe(1.1), _kernel_probe(1.0), _kernel_probe(1.2)]
    ks = kernel_state(prof, [_kernel_probe(1.375)])
    assert ks["compute"] == pytest.approx(1.1 / 1.375) and "3 reference probes" in ks["basis"]
    assert kernel_state(prof, None) is None and kernel_state(prof, []) is None
    assert kernel_state(prof, [_kernel_probe(1.0), _kernel_probe(1.0, "fp32")]) is None   # one kernel only


def test_kernel_state_scales_only_the_int8_slot_of_its_own_sweep():
    prof = _with_int8(_profile())
    state = {"compute": 0.9, "memory": 1.0, "basis": "t",
             "kernel": {"scheme": "int8-fbgemm", "compute": 0.5, "samples": 3, "basis": "k"}}
    acc0 = roofline_for_profile(prof, None, "int8-fbgemm")[0]
    acc = roofline_for_profile(prof, state, "int8-fbgemm")[0]
    assert acc.peak_dense.int8_tops == pytest.approx(acc0.peak_dense.int8_tops * 0.5)
    assert acc.peak_dense.fp32_tflops == pytest.approx(acc0.peak_dense.fp32_tflops * 0.9)
    assert "int8 GEMMs x0.500" in acc.sources["peak_dense"]
    # a run predicted from another int8 sweep (oneDNN) keeps the fp32 compute ratio for its int8 slot
    prof["gemm"]["int8"] = prof["gemm"]["int8-fbgemm"]
    acc_o = roofline_for_profile(prof, state, "int8")[0]
    assert acc_o.peak_dense.int8_tops == pytest.approx(acc0.peak_dense.int8_tops * 0.9)


# ------------------------------------------------------------------ the GEMV line: a fixed cost per call

MB = 1e6


def test_gemv_line_recovers_a_fixed_cost_per_call():
    import statistics

    from planner.measure.microbench import gemv_line
    # fbgemm's int8 GEMVs on this project's CPU: ~1 ms per call plus ~21 GB/s (benchmarks/gemv_line.py)
    pts = [(b * MB, 1e-3 + b * MB / 21e9) for b in (16.8, 45.1, 45.1, 90.2)]
    c, r = gemv_line(pts)
    assert c == pytest.approx(1e-3, rel=1e-9) and r == pytest.approx(21e9, rel=1e-9)
    # one rate through the origin (the median of b / t, the 45.1 MB points' 14.33 GB/s) would predict the 90.2 MB
    # GEMV at 6.295 ms where it takes 5.295: +18.9 %
    origin = statistics.median(b / t for b, t in pts)
    assert origin == pytest.approx(14.33e9, rel=1e-3)
    assert 90.2 * MB / origin / (1e-3 + 90.2 * MB / 21e9) - 1 == pytest.approx(0.189, abs=1e-3)


def test_gemv_line_falls_back_to_one_rate():
    import statistics

    from planner.errors import PlannerError
    from planner.measure.microbench import gemv_line
    rate = lambda pts: statistics.median(b / t for b, t in pts)  # noqa: E731
    one = [(45 * MB, 3e-3), (45 * MB, 3.2e-3)]                     # one size (a quick sweep): no line
    assert gemv_line(one) == (0.0, rate(one))
    prop = [(b * MB, b * MB / 20e9) for b in (16, 45, 90)]         # proportional: the intercept is 0
    assert gemv_line(prop) == (0.0, pytest.approx(20e9))
    small = [(b * MB, 0.02 * 0.8e-3 + b * MB / 20e9) for b in (16, 45, 90)]   # 2 % of the smallest GEMV: noise
    assert gemv_line(small) == (0.0, rate(small))
    falling = [(16 * MB, 3e-3), (90 * MB, 2e-3)]                   # slower for fewer bytes: no line
    assert gemv_line(falling) == (0.0, rate(falling))
    close = [(40 * MB, 3e-3), (60 * MB, 4e-3)]                     # 1.5x apart: too close to fit a line
    assert gemv_line(close) == (0.0, rate(close))
    with pytest.raises(PlannerError, match="no timed smallest-M points"):
        gemv_line([])


def test_gemv_line_caps_the_fixed_cost_per_call():
    from planner.measure.microbench import gemv_line
    pts = [(b * MB, 10e-3 + b * MB / 1e12) for b in (16, 90)]     # nearly all fixed cost
    c, r = gemv_line(pts)
    assert c == pytest.approx(0.75 * pts[0][1])                # GEMV_MAX_CALL of the smallest call
    rates = [b / (t - c) for b, t in pts]                         # the rate through that intercept: their median
    assert r == pytest.approx((rates[0] + rates[1]) / 2)


def _profile_with_call(call: float) -> dict:
    prof = _profile()
    for p in prof["gemm"]["fp32"]["points"]:
        p["seconds"] = p["median_s"] = p["seconds"] + call
    return prof


def test_a_sweeps_fixed_cost_per_call_goes_to_every_gemm_of_the_roofline():
    """A sweep whose every point carries 1 ms more: the fit finds the 1 ms (from the M=1 points alone), the M
    table stays the generating one, and a decode-step GEMV of the model is predicted as 1 ms + bytes / rate."""
    from planner import catalog
    from planner.api import roofline_rows
    from planner.arch.pipeline import compile_model
    from planner.measure.eager_ops import BODY_ARCH, body_spec
    from planner.quant import load_precision
    prof = _profile_with_call(1e-3)
    f = gemm_fit(prof, "fp32")
    assert f["call_overhead_s"] == pytest.approx(1e-3, rel=2e-3) and f["stream_bytes_s"] == pytest.approx(STREAM, rel=2e-3)
    assert dict(f["eff_by_intensity"])[2 * 32 / 4] == pytest.approx(EFF[32], rel=2e-3)
    assert f["mdape_pct"] < 0.1
    acc, cal = roofline_for_profile(prof)
    assert cal.precisions["fp32"].call_overhead_s == pytest.approx(f["call_overhead_s"])
    plan = compile_model(body_spec(BODY_ARCH), load_precision("fp32"), {})
    catalog.register_accelerator(acc)
    try:
        with catalog.use_calibration(cal):
            rows = roofline_rows(plan, acc, "fp32", 1, 16, 2, 1, "eager", "decode")
    finally:
        catalog.unregister_accelerator(acc.id)
    up = next(r for r in rows if r["name"] == "mlp_up")    # the fused gate/up GEMV: 4096 x 22016 fp32 weights
    w = 4096 * 2 * 11008 * 4
    assert up["time_s"] == pytest.approx(f["call_overhead_s"] + w / f["stream_bytes_s"], rel=2e-3)
    assert up["overhead_s"] == pytest.approx(f["call_overhead_s"], rel=1e-6)
    norm = next(r for r in rows if r["name"] == "norm")       # not a GEMM: no GEMM call cost
    assert norm["overhead_s"] < 1e-4


def test_ops_without_a_gemm_sweep_stream_like_the_sum():
    """Decode attention's KV reads run at the sum's rate, the fp32 GEMVs at their own sweep's (the bandwidth)."""
    prof = _profile()
    prof["memory"]["read_bytes_s"] = 0.8 * STREAM
    acc, cal = roofline_for_profile(prof)
    eng, fp32 = cal.engines["eager"], cal.precisions["fp32"]
    assert acc.bandwidth_bytes_s == pytest.approx(STREAM) and eng.mem_frac == pytest.approx(0.8)
    assert eng.mem_frac * fp32.mem_scale == pytest.approx(1.0)
    prof["memory"]["read_bytes_s"] = 0.5 * STREAM   # beyond PrecisionEff's 1.5x lift: the fraction stops at 1/1.5
    _, cal = roofline_for_profile(prof)
    assert cal.engines["eager"].mem_frac == pytest.approx(1 / 1.5)
    assert cal.engines["eager"].mem_frac * cal.precisions["fp32"].mem_scale == pytest.approx(1.0)


def test_cuda_region_time_is_its_kernels_not_its_annotation_span():
    """A region's device time on CUDA sums the kernels of the ops under it, nested regions included; a 'kernel'
    attached to the region itself (kineto's gpu_user_annotation span, gaps included) is not counted. Profiler
    events here are plain records with the fields torch's FunctionEvent has."""
    from types import SimpleNamespace as E

    from planner.measure.profiler import device_us
    k = lambda name, us: E(name=name, duration=us)   # noqa: E731
    mm = E(name="aten::mm", kernels=[k("sm90_gemm", 30.0)], cpu_children=[])
    quant = E(name="quant", kernels=[k("quant", 50.0)], cpu_children=[
        E(name="aten::abs", kernels=[k("abs_kernel", 2.0)], cpu_children=[]),
        E(name="aten::amax", kernels=[k("reduce_kernel", 3.0)], cpu_children=[])])
    region = E(name="mlp_up", kernels=[k("mlp_up", 400.0)], cpu_children=[quant, mm])
    assert device_us(region, {"mlp_up", "quant"}) == 35.0
    assert device_us(quant, {"mlp_up", "quant"}) == 5.0


def test_gpu_profile_rates_map_to_their_slots():
    """A CUDA profile times convolutions in fp16 and pooling in bf16/fp16: their fractions are taken against the
    fp16 slot (conv) and the fp32 slot (pooling elements, which the core scales by fp32), not dropped."""
    from planner.measure.microbench import _rate_to_slot, compute_bound_m, CUDA_MS, FULL_MS
    slots = {"fp32": 50e12, "fp16": 700e12, "bf16": 700e12}
    assert _rate_to_slot({"fp16": 350e12}, slots) == 0.5
    assert _rate_to_slot({"fp32": 80e9}, {"fp32": 100e9}) == 0.8
    assert _rate_to_slot({"bf16": 10e9, "fp16": 20e9}, slots, fp32_only=True) == 20e9 / 50e12
    assert _rate_to_slot({}, slots) is None
    assert compute_bound_m(FULL_MS) == 128 and compute_bound_m(CUDA_MS) == 1024


def test_cuda_probe_points_are_in_the_cuda_sweep():
    from planner.measure.microbench import CUDA_MS, FULL_SHAPES
    from planner.measure.probe import CUDA_COMPUTE_PROBE, MEMORY_PROBE, probe_plan_for_sweep
    assert probe_plan_for_sweep(CUDA_MS, FULL_SHAPES, "cuda") == ("bf16", (MEMORY_PROBE, CUDA_COMPUTE_PROBE))
    assert CUDA_COMPUTE_PROBE[0] in CUDA_MS and CUDA_COMPUTE_PROBE[1:] in FULL_SHAPES


def test_a_scheme_that_fails_is_skipped_and_named_not_fatal():
    """On CUDA a kernel the lent GPU's torch lacks leaves its scheme out of the sweep, with the error recorded,
    instead of losing the whole profile; elsewhere (skipped=None) the error is raised."""
    from planner.measure.microbench import _Sync, bench_gemm_interleaved
    from planner.measure.profiler import Flusher
    flusher, sync = Flusher("cpu", 1 << 20), _Sync("cpu")
    skipped = {}
    out = bench_gemm_interleaved(["fp32", "no-such-kernel"], (1, 8), ((64, 32),), "cpu", flusher, 2, sync,
                                 skipped=skipped)
    assert list(out) == ["fp32"] and [p["m"] for p in out["fp32"]] == [1, 8]
    assert list(skipped) == ["no-such-kernel"] and "ValueError" in skipped["no-such-kernel"]
    with pytest.raises(ValueError):
        bench_gemm_interleaved(["no-such-kernel"], (1,), ((64, 32),), "cpu", flusher, 1, sync)


def test_a_cpu_profiles_host_costs_follow_the_run_state():
    """On a CPU the launch cost, the eager ops' fixed cost per call and a GEMV's fixed cost per call are host
    work: a run whose probes read the host at x2 gets them halved, like its GEMM peaks doubled. On a GPU they are
    the host's launch path, which a GPU probe does not measure: unchanged."""
    prof = {**_profile(), "launch_overhead_s": 4e-6, "eager_op_overhead_s": {"norm": 200e-6, "rope": 300e-6}}
    g = prof["gemm"]["fp32"]
    g["points"] = [{**p, "seconds": p["seconds"] + 1e-3, "median_s": p["median_s"] + 1e-3} if p["m"] == 1 else p
                   for p in g["points"]]            # a GEMV's fixed cost per call: 1 ms
    g["points"].append({**g["points"][0], "n": 22016, "weight_bytes": 4096 * 22016 * 4,
                        "act_bytes": 4096 * 4 + 22016 * 4, "seconds": _time(1, 4096, 22016) + 1e-3,
                        "median_s": _time(1, 4096, 22016) + 1e-3})
    state = {"compute": 2.0, "memory": 1.5}
    _, cal0 = roofline_for_profile(prof)
    acc2, cal2 = roofline_for_profile(prof, state)
    assert acc2.peak_dense.fp32_tflops * 1e12 == pytest.approx(2 * PEAK)
    e0, e2 = cal0.engines["eager"], cal2.engines["eager"]
    assert e2.launch_overhead_s == pytest.approx(e0.launch_overhead_s / 2)
    assert dict(e2.op_overhead_s) == pytest.approx({"norm": 100e-6, "rope": 150e-6})
    assert cal0.precisions["fp32"].call_overhead_s == pytest.approx(1e-3, rel=0.05)
    assert cal2.precisions["fp32"].call_overhead_s == pytest.approx(cal0.precisions["fp32"].call_overhead_s / 2)
    gpu = {**prof, "meta": {**prof["meta"], "kind": "gpu"}}
    _, cal_g = roofline_for_profile(gpu, state)
    assert cal_g.engines["eager"].launch_overhead_s == pytest.approx(4e-6)
    assert dict(cal_g.engines["eager"].op_overhead_s) == pytest.approx({"norm": 200e-6, "rope": 300e-6})


def test_a_profile_far_from_the_one_it_replaces_is_flagged():
    """planner microbench compares the host's speed during the new profile (its reference probes) with the
    profile it replaces: at half the speed it warns (a profile of a slow spell), at 10 % off it does not."""
    from planner.measure.probe import drift_note, vs_previous
    old = _profile()
    slow = {**_profile(), "date": "2026-11-23T07:53:00+00:00", "probe_reference": [_probe(2.0, 2.0)] * 3}
    r = vs_previous(slow, [old])
    assert r["compute"] == pytest.approx(0.5, rel=1e-3) and r["memory"] == pytest.approx(0.5, rel=1e-3)
    assert "x0.50" in drift_note(r) and r["previous_dates"] == [old["date"]]
    near = {**slow, "probe_reference": [_probe(1.1, 0.95)] * 3}
    assert drift_note(vs_previous(near, [old])) is None
    assert vs_previous(slow, []) is None and drift_note(None) is None
    # the usual speed is the median over the profiles before: one slow profile among three does not make a
    # normal new one look fast
    normal = {**_profile(), "probe_reference": [_probe(1.0, 1.0)] * 3}
    assert drift_note(vs_previous(normal, [slow, old, old])) is None
    assert drift_note(vs_previous(normal, [slow])) is not None
