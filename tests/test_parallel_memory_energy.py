"""Interconnect bandwidth by topology, memory limits, power model: hand-computed values."""
import pytest

import planner
from planner import catalog
from planner.energy import phase_power
from planner.memory import MemoryNeed, largest_batch, memory_per_gpu
from planner.parallel import allreduce_bandwidth


def test_allreduce_bandwidth_by_topology():
    gb = 1e9
    assert allreduce_bandwidth(catalog.load_gpu("h100-sxm"), 8) == 450 * gb          # NVSwitch, per direction
    assert allreduce_bandwidth(catalog.load_gpu("h100-pcie"), 2) == 300 * gb         # NVLink bridge pair
    assert allreduce_bandwidth(catalog.load_gpu("h100-pcie"), 4) == 64 * gb          # beyond the pair: PCIe Gen5
    mi = catalog.load_gpu("mi300x")
    assert allreduce_bandwidth(mi, 2) == 64 * gb                                     # one xGMI peer link
    assert allreduce_bandwidth(mi, 8) == 448 * gb                                    # 7 links, all-to-all
    assert allreduce_bandwidth(catalog.load_gpu("l40s"), 4) == 32 * gb               # no link: PCIe Gen4


def test_mi300x_tp2_pays_more_for_allreduce_than_h100():
    """Same model, same tp: MI300X's single 64 GB/s peer link vs NVSwitch 450 GB/s (pitfall 22)."""
    def comm(gpu):
        df = planner.roofline_table(gpu, "llama-3-70b", "bf16", 32, 2048, 16, tp=2, phases=("prefill",))
        return df[df.name == "allreduce"].time_s.sum()
    assert comm("mi300x") > 4 * comm("h100-sxm")


def test_memory_parts_hand_computed():
    need = MemoryNeed(weights=14e9, kv_per_seq_token=524288, act_per_token=1000.0, act_per_seq=128000.0)
    m = memory_per_gpu(need, sequences=4, context=1000, prefill_tokens=2000, tp=2, pp=1, reserve_fixed=1e9,
                       reserve_frac=0.0, capacity=80e9)
    assert m["weights"] == 7e9
    assert m["kv_cache"] == 524288 * 4 * 1000 / 2
    assert m["activations"] == (1000.0 * 2000 + 128000.0 * 4) / 2
    assert m["total"] == pytest.approx(7e9 + 1.048576e9 + 1.256e6 + 1e9)


def test_largest_batch_is_the_edge_of_fitting():
    r = planner.estimate("l40s", "llama-3-8b", "bf16", 1, 1024, 256)
    b = r["max_batch"]
    assert planner.estimate("l40s", "llama-3-8b", "bf16", b, 1024, 256)["fits"] is True
    assert planner.estimate("l40s", "llama-3-8b", "bf16", b + 1, 1024, 256)["fits"] is False


def test_longest_context_fits_and_is_capped_by_the_model():
    r = planner.estimate("h200-sxm", "llama-2-7b", "bf16", 1, 128, 128)
    assert r["max_context"] == 4096                 # memory allows more; Llama-2 was trained to 4096
    r = planner.estimate("l4", "llama-2-13b", "bf16", 8, 128, 128)
    assert 0 <= r["max_context"] < 4096


def test_power_model_hand_values():
    # idle 70, TDP 700; half the peak compute rate achieved and a quarter of bandwidth, weights 1.0 / 0.5
    p = phase_power(70.0, 700.0, peak_time_c=0.5, peak_time_m=0.25, time=1.0, compute_weight=1.0, memory_weight=0.5)
    assert p == pytest.approx(70 + 630 * (0.5 + 0.125))
    assert phase_power(70.0, 700.0, 2.0, 2.0, 1.0, 1.0, 0.5) == 700.0     # saturates at TDP


def test_decode_draws_less_power_than_prefill():
    pre = planner.estimate("h100-sxm", "llama-3-8b", "bf16", 16, 4096, 1)
    dec = planner.estimate("h100-sxm", "llama-3-8b", "bf16", 1, 16, 1024)
    assert pre["avg_power_w"] > dec["avg_power_w"]


def test_pipeline_parallel_splits_memory():
    one = planner.estimate("h100-sxm", "llama-2-70b", "bf16", 1, 128, 128, tp=2)
    pp2 = planner.estimate("h100-sxm", "llama-2-70b", "bf16", 1, 128, 128, tp=2, pp=2)
    assert pp2["weights_gb_per_gpu"] == pytest.approx(one["weights_gb_per_gpu"] / 2)
    assert pp2["n_gpus"] == 4 and pp2["e2e_s"] >= one["e2e_s"]


def test_replicas_scale_total_throughput():
    r = planner.estimate("l4", "llama-3-8b", "w4a16", 8, 256, 64, replicas=3)
    assert r["total_output_tokens_per_s"] == pytest.approx(3 * r["output_tokens_per_s"])
