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
