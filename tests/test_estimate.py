"""End-to-end predictions: physical sanity, memory, parallelism, quantization ordering, sweep = estimate."""
import math

import pytest

import planner
from planner import catalog
from planner.errors import PlannerError, UnknownIdError


def test_decode_floor_llama2_7b_h100():
    r = planner.estimate("h100-sxm", "llama-2-7b", "bf16", 1, 128, 128)
    floor = 13.48e9 / 3.35e12            # all weights once per token at datasheet bandwidth
    assert floor < r["tpot_s"] < 1.6 * floor
    assert r["decode_bound"] == "memory"
    assert r["fits"] is True
    assert r["output_tokens_per_s"] == pytest.approx(128 / r["e2e_s"])


def test_kv_cache_llama2_7b_at_4096_tokens():
    r = planner.estimate("h100-sxm", "llama-2-7b", "bf16", 1, 4000, 96)
    assert r["kv_cache_gb_per_gpu"] == pytest.approx(2 * 32 * 32 * 128 * 2 * 4096 / 1e9)   # 2 GiB


def test_llama2_70b_needs_tensor_parallel():
    one = planner.estimate("h100-sxm", "llama-2-70b", "bf16", 1, 128, 128, tp=1)
    four = planner.estimate("h100-sxm", "llama-2-70b", "bf16", 1, 128, 128, tp=4)
    assert one["fits"] is False and "80 GB" in one["fits_reason"]
    assert four["fits"] is True
    assert four["weights_gb_per_gpu"] == pytest.approx(one["weights_gb_per_gpu"] / 4)
    assert four["tpot_s"] < one["tpot_s"] / 2.5          # 4x the bandwidth, minus all-reduce cost


def test_llama3_70b_fp8_fits_one_h100_bf16_does_not():
    assert planner.estimate("h100-sxm", "llama-3-70b", "fp8", 8, 800, 200)["fits"] is True
    assert planner.estimate("h100-sxm", "llama-3-70b", "bf16", 8, 800, 200)["fits"] is False


def test_prefill_compute_bound_decode_memory_bound():
    r = planner.estimate("h100-sxm", "llama-3-8b", "bf16", 16, 2048, 128)
    assert r["prefill_bound"] == "compute"
    assert r["decode_bound"] == "memory"


def test_fp8_refused_on_a100():
    with pytest.raises(PlannerError, match="not supported on a100-sxm-80gb"):
        planner.estimate("a100-sxm-80gb", "llama-2-7b", "fp8", 1, 128, 128)


def test_bf16_refused_on_v100():
    with pytest.raises(PlannerError, match="no native bf16"):
        planner.estimate("v100-sxm2-32gb", "llama-2-7b", "bf16", 1, 128, 128)


def test_unknown_ids_suggest():
    with pytest.raises(UnknownIdError, match="h100-sxm"):
        planner.estimate("h100-sxmm", "llama-2-7b")
    with pytest.raises(UnknownIdError, match="llama-2-7b"):
        planner.estimate("h100-sxm", "llama2-7b")


@pytest.mark.parametrize("field,value", [("batch", 0), ("batch", -3), ("input_len", 0), ("tp", 0), ("batch", 1.5)])
def test_non_positive_inputs_rejected(field, value):
    kw = dict(gpu="h100-sxm", model="llama-2-7b", precision="bf16", batch=1, input_len=128, output_len=128, tp=1)
    kw[field] = value
    with pytest.raises(PlannerError, match=field):
        planner.estimate(**kw)


def test_tp_beyond_node_refused():
    with pytest.raises(PlannerError, match="GPUs per node"):
        planner.estimate("h100-sxm", "llama-2-70b", "bf16", 1, 128, 128, tp=16)


def test_smoothquant_granularity_order():
    """SmoothQuant Fig. 8 / Table: latency O1 (per-token) >= O2 (per-tensor dynamic) >= O3 (static)."""
    t = {p: planner.estimate("a100-sxm-80gb", "opt-30b", p, 16, 512, 32)["e2e_s"] for p in ("w8a8-o1", "w8a8-o2", "w8a8-o3")}
    assert t["w8a8-o1"] > t["w8a8-o2"] > t["w8a8-o3"]


def test_w8a8_faster_than_fp16_but_below_ideal_2x():
    fp16 = planner.estimate("a100-sxm-80gb", "llama-3-8b", "fp16", 1, 512, 128)
    w8 = planner.estimate("a100-sxm-80gb", "llama-3-8b", "w8a8", 1, 512, 128)
    speedup = fp16["tpot_s"] / w8["tpot_s"]
    assert 1.2 < speedup < 2.0


def test_llm_int8_slower_than_fp16_in_eager():
    """SmoothQuant (Fig. 8) measured LLM.int8() slower than fp16 in PyTorch."""
    fp16 = planner.estimate("a100-sxm-80gb", "opt-30b", "fp16", 4, 512, 32, engine="eager")
    li8 = planner.estimate("a100-sxm-80gb", "opt-30b", "llm-int8", 4, 512, 32, engine="eager")
    assert li8["e2e_s"] > fp16["e2e_s"]


def test_w4a16_decode_faster_than_bf16():
    bf = planner.estimate("h100-sxm", "llama-2-7b", "bf16", 1, 128, 128)
    w4 = planner.estimate("h100-sxm", "llama-2-7b", "w4a16", 1, 128, 128)
    assert w4["tpot_s"] < bf["tpot_s"] / 1.5


def test_image_model_keys():
    r = planner.estimate("l40s", "densenet-121", "fp16", 64)
    assert r["images_per_s"] == pytest.approx(64 / r["latency_s"])
    assert r["fits"] and r["avg_power_w"] <= 350


def test_pipeline_adds_vision_and_image_tokens():
    r = planner.estimate("l40s", "r2gengpt", "fp16", 1)
    llm = planner.estimate("l40s", "llama-2-7b", "fp16", 1, 32 + 49, 100)
    assert r["image_tokens"] == 49 and r["beams"] == 3
    assert r["vision_s"] > 0
    assert r["ttft_s"] > llm["ttft_s"]
    assert r["kv_cache_gb_per_gpu"] == pytest.approx(3 * llm["kv_cache_gb_per_gpu"], rel=0.01)


def test_power_between_idle_and_tdp_and_energy_consistent():
    r = planner.estimate("h100-sxm", "llama-2-7b", "bf16", 32, 1024, 256)
    acc = catalog.load_gpu("h100-sxm")
    assert acc.power.idle_w < r["avg_power_w"] <= acc.power.tdp_w
    assert r["energy_j"] == pytest.approx(r["avg_power_w"] * r["e2e_s"])


def test_sweep_matches_estimate():
    df = planner.sweep(gpus=["h100-sxm", "a100-sxm-80gb"], models=["llama-2-7b"], precisions=["bf16", "fp8"],
                       batches=[1, 8], input_lens=[128], output_lens=[64], tps=[1, 2])
    assert len(df) == 2 * 2 * 2 * 2
    row = df[(df.gpu == "h100-sxm") & (df.precision == "fp8") & (df.batch == 8) & (df.tp == 2)].iloc[0]
    e = planner.estimate("h100-sxm", "llama-2-7b", "fp8", 8, 128, 64, tp=2)
    for k in ("ttft_s", "tpot_s", "e2e_s", "output_tokens_per_s", "memory_gb_per_gpu", "avg_power_w", "energy_j"):
        assert row[k] == pytest.approx(e[k], rel=1e-9), k
    a100_fp8 = df[(df.gpu == "a100-sxm-80gb") & (df.precision == "fp8")]
    assert not a100_fp8.supported.any() and not a100_fp8.fits.any() and a100_fp8.ttft_s.isna().all()


def test_results_are_finite():
    r = planner.estimate("t4", "mixtral-8x7b", "w4a16", 3, 7, 2, tp=1)
    assert all(math.isfinite(v) for v in r.values() if isinstance(v, float))
