"""A run's memory footprint is checked before it starts (a one-line refusal, not the OOM killer), and the kept
heap of the tuned allocator is handed back past a limit."""
import sys

import pytest

from planner.catalog import load_model
from planner.errors import PlannerError
from planner.measure import allocator
from planner.measure.footprint import RUNTIME_BYTES, check_fits, run_footprint


def test_llama_footprint_parts_are_hand_computed():
    # Llama-2-7B, 2 layers, fp32, batch 8, input 512, output 4
    parts = run_footprint(load_model("llama-2-7b"), 2, 4, 8, 512, 4, flush_bytes=1_258_291_200)
    per_layer = 4 * 4096 * 4096 + 3 * 4096 * 11008 + 2 * 4096          # attention, gated MLP, two norms
    params = 2 * 32000 * 4096 + 2 * per_layer + 4096                    # embedding, lm_head, final norm
    assert parts["weights"] == params * 4 == 2_667_659_264
    assert parts["kv_cache"] == 2 * 2 * 8 * (512 + 4) * 32 * 128 * 4   # K and V, 2 layers, 32 KV heads of 128
    assert parts["activations"] == 8 * 512 * (4 * 11008 + 8 * 4096) * 4
    assert parts["cache_flush"] == 1_258_291_200 and parts["runtime"] == RUNTIME_BYTES
    # within 10 % of the 5.6 GB peak RSS measured for this run with the default allocator (module docstring)
    assert 5.6e9 <= sum(parts.values()) <= 5.6e9 * 1.1


def test_footprint_scales_with_batch_and_input_and_caps_layers():
    spec = load_model("llama-2-7b")
    a = run_footprint(spec, 1, 4, 1, 128, 16, 0)
    b = run_footprint(spec, 1, 4, 2, 256, 32, 0)
    assert b["activations"] == 4 * a["activations"] and b["kv_cache"] == 4 * a["kv_cache"]
    assert b["weights"] == a["weights"]
    whole = run_footprint(spec, None, 2, 1, 128, 16, 0)
    assert run_footprint(spec, 99, 2, 1, 128, 16, 0) == whole        # --layers beyond the model: all of them
    assert whole["weights"] > 6.7e9 * 2                               # 6.74 B parameters in 16-bit


def test_cnn_footprint_is_weights_only():
    parts = run_footprint(load_model("densenet-121"), None, 4, 8, 0, 0, 64 << 20)
    assert parts["kv_cache"] == parts["activations"] == 0.0
    # DenseNet-121: 7.98 M parameters with ImageNet's 1000-class head (1024 x 1000 + 1000); the catalog's has
    # CheXNet's 14 classes: 7.98 M - 1.025 M + 14,350 = 6.97 M
    assert 6.9e6 * 4 < parts["weights"] < 7.0e6 * 4


def test_check_fits_refuses_in_one_line_naming_the_parts():
    parts = {"weights": 3e9, "kv_cache": 1e9, "activations": 40e9, "cache_flush": 1e9, "runtime": 0.5e9}
    with pytest.raises(PlannerError) as e:
        check_fits(parts, 24e9, "llama-2-7b (2 layers) at batch 64")
    msg = str(e.value)
    assert "\n" not in msg and "~45.5 GB" in msg and "activations 40.0" in msg and "24.0 GB available" in msg
    assert "--batch" in msg and "--layers" in msg
    check_fits(parts, 60e9, "fits")                                   # 45.5 <= 0.9 x 60
    with pytest.raises(PlannerError):
        check_fits(parts, 50e9, "does not: 45.5 > 0.9 x 50")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc_trim and /proc are Linux's")
def test_memory_guard_trims_only_past_its_limit():
    assert allocator.rss_bytes() > 10 << 20                          # a Python process with numpy holds more
    assert allocator.release_freed_memory() is True
    idle = allocator.MemoryGuard(1e15)
    assert idle.check() is False
    assert idle.trims == 0 and idle.note().startswith("never trimmed")
    busy = allocator.MemoryGuard(0)
    assert busy.check() is True and busy.check() is True     # True: the caller re-warms before timing
    assert busy.trims == 2 and busy.peak_before_trim > 0 and "2 time(s)" in busy.note()
    assert "untimed repetition" in busy.note()


def test_a_repetition_after_a_trim_is_preceded_by_an_untimed_one():
    """profiler.time_phase: when between() says it handed the heap back, one more repetition runs before the
    timed ones of that round, so no timed repetition faults its activations in."""
    import torch

    from planner.measure.models import STEP_REGION, region
    from planner.measure.profiler import Flusher, time_phase
    a = torch.randn(64, 64)
    calls = []

    def run_rep(flush):
        calls.append(1)
        flush()
        with region(STEP_REGION):
            with region("mlp_up"):
                a @ a
    answers = iter([True, False, True])
    t = time_phase("prefill", run_rep, steps=1, reps=3, warmup=1, device="cpu", flusher=Flusher("cpu", 1 << 20),
                   op_names={"mlp_up"}, between=lambda: next(answers))
    assert len(calls) == 1 + 3 * 2 + 2                # warm-up, (unprofiled + profiled) x 3, two re-warms
    assert len(t.step_unprofiled) == 3 and len(t.rows[0].times) == 3
