"""The measurement path end to end on CPU on small models built in code: microbench profile -> measured runs
(CSV + metadata + compressed trace, atomic) -> validation (per-op join, end to end, whole-model scaling,
speed-ups). Under a minute on CI's 2 cores. The committed CPU campaign validates too."""
import gzip
import json
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from planner.cli import main  # noqa: E402
from planner.measure.harness import measure_model  # noqa: E402
from planner.measure.microbench import gemm_fit, roofline_for_profile, run_microbench  # noqa: E402
from planner.measure.runs import CSV_COLUMNS, profile_path, read_run, write_json  # noqa: E402
from planner.specs import ModelSpec  # noqa: E402
from planner.validate import list_measured_runs, validate_run  # noqa: E402

TINY = ModelSpec.model_validate({
    "id": "tiny-llama", "name": "tiny", "category": "llm", "config_source": "test",
    "arch": {"kind": "decoder", "n_layers": 6, "d_model": 128, "n_heads": 4, "n_kv_heads": 2, "d_ff": 256,
             "vocab_size": 256, "gated_mlp": True, "norm": "rmsnorm", "position": "rope", "max_context": 128}})
TINY_VIT = ModelSpec.model_validate({
    "id": "tiny-vit", "name": "tiny vit", "category": "vision", "config_source": "test",
    "arch": {"kind": "vit", "image_size": 32, "patch_size": 8, "n_layers": 4, "d_model": 64, "n_heads": 4,
             "d_ff": 128, "n_classes": 10}})


@pytest.fixture(scope="module")
def campaign(tmp_path_factory):
    root = tmp_path_factory.mktemp("measurements")
    t0 = time.perf_counter()
    prof = run_microbench("cpu", quick=True, reps=2, schemes=["fp32", "int8", "int8-fbgemm"])
    write_json(profile_path(root, prof["device"]), prof)
    runs = {p: measure_model(TINY, p, batch=2, input_len=16, output_len=4, layers=2, reps=2, warmup=1,
                             out_root=root, progress=False) for p in ("fp32", "w8a8")}
    vit = measure_model(TINY_VIT, "fp32", batch=2, layers=2, reps=2, out_root=root, progress=False, trace=False)
    return root, prof, runs, vit, time.perf_counter() - t0


def test_measurement_path_runs_in_under_a_minute(campaign):
    assert campaign[4] < 60


def test_profile_sweep_is_timed_in_rounds(campaign):
    _, prof, _, _, _ = campaign
    for scheme in ("fp32", "int8"):
        pts = prof["gemm"][scheme]["points"]
        assert [(p["m"], p["k"], p["n"]) for p in pts] == [(m, 512, 512) for m in (1, 16, 64)]
        assert all(0 < p["seconds"] <= p["median_s"] <= p["max_s"] for p in pts)
        assert all(len(p["times_s"]) == prof["reps"] and min(p["times_s"]) == p["seconds"] for p in pts)
    assert "rounds" in prof["statistic"] and prof["allocator"].startswith("glibc mallopt")
    ref = prof["probe_reference"]                 # the device-state reference, probed as runs probe, per round
    assert len(ref) == prof["reps"] == 2 and all(r["scheme"] == "fp32" and [p["m"] for p in r["points"]] == [1, 64] for r in ref)
    assert set(prof["sweep_vs_reference"]) == {"memory", "compute"} and all(v > 0 for v in prof["sweep_vs_reference"].values())
    assert prof["pool_elems_s"]["fp32"] > 0


def test_profile_gives_a_session_accelerator(campaign):
    _, prof, _, _, _ = campaign
    acc, cal = roofline_for_profile(prof)
    assert acc.peak_dense.fp32_tflops * 1e12 == pytest.approx(prof["gemm"]["fp32"]["achievable_flops_s"])
    assert acc.peak_dense.int8_tops * 1e12 == pytest.approx(prof["gemm"]["int8"]["achievable_flops_s"])
    streams = [gemm_fit(prof, s)["stream_bytes_s"] for s in prof["gemm"]]
    assert acc.bandwidth_bytes_s == pytest.approx(max([prof["memory"]["read_bytes_s"]] + streams))
    eng = cal.engines["eager"]
    # ops without a GEMM sweep stream like the sum; each GEMM scheme's weights at its own GEMV line's rate
    assert eng.gemm_compute_frac == 1.0
    assert eng.mem_frac == pytest.approx(max(prof["memory"]["read_bytes_s"] / acc.bandwidth_bytes_s, 1 / 1.5))
    fp32 = gemm_fit(prof, "fp32")
    assert acc.bandwidth_bytes_s * min(eng.mem_frac * cal.precisions["fp32"].mem_scale, 1.0) == \
        pytest.approx(min(fp32["stream_bytes_s"], 1.5 * eng.mem_frac * acc.bandwidth_bytes_s))
    assert eng.launch_overhead_s == pytest.approx(prof["launch_overhead_s"])
    # the conv mix's rate per resolution and batch (quick: batches 1 and 2 at a quarter of the resolution; a
    # level's FLOPs per weight byte is 2 x batch x output pixels / 4 bytes), over the fp32 peak
    lv = prof["conv_by_intensity"]["fp32"]
    # (the stem's output 28; the blocks' 14, 7 and 3; the last block's 1x1 conv on a 1x1 map, its 3x3 on 3x3)
    assert [x for x, _ in lv] == sorted({2.0 * b * o * o / 4 for b in (1, 2) for o in (28, 14, 7, 3, 1)})
    assert all(r > 0 for _, r in lv)
    assert [x for x, _ in eng.conv_eff_by_intensity] == [x for x, _ in lv]
    assert [e for _, e in eng.conv_eff_by_intensity] == pytest.approx(
        [max(min(r / (acc.peak_dense.fp32_tflops * 1e12), 1.0), 1e-3) for _, r in lv])
    # encoder attention as the backend runs it, by keys attended (quick: a 4x4 window and 64 tokens, fp32: C / 4)
    att = prof["encoder_attention_by_context"]["fp32"]
    assert [x for x, _ in att] == [16 / 4, 64 / 4] and all(r > 0 for _, r in att)
    assert [x for x, _ in eng.encoder_attn_eff_by_context] == [x for x, _ in att]
    assert [e for _, e in eng.encoder_attn_eff_by_context] == pytest.approx(
        [max(min(r / (acc.peak_dense.fp32_tflops * 1e12), 1.0), 1e-3) for _, r in att])
    assert [x for x, _ in prof["typical"]["encoder_attention_by_context"]["fp32"]] == [x for x, _ in att]
    # the eager small ops' fixed cost per call, measured cold on a tiny decoder, goes to the roofline as it is
    from planner.measure.eager_ops import SMALL_OPS
    assert set(prof["eager_op_overhead_s"]) == set(SMALL_OPS)
    assert dict(eng.op_overhead_s) == pytest.approx({**prof["eager_op_overhead_s"], **prof["cnn_op_overhead_s"]})
    # a CNN's small ops, per call in tiny-width DenseNet-121 and ResNet-50 passes, scaled by each network's glue
    from planner.measure.eager_ops import CNN_SMALL_OPS
    cnn = prof["cnn_ops"]["networks"]
    assert set(prof["cnn_op_overhead_s"]) == {f"cnn.{o}" for o in CNN_SMALL_OPS}
    assert set(cnn["densenet-121"]["calls"]) == {"norm", "act", "pool", "concat"} and "add" in cnn["resnet-50"]["calls"]
    for op in CNN_SMALL_OPS:
        have = [(n["calls"][op], n["profiled_per_call_s"][op] * n["glue_factor"]) for n in cnn.values()
                if n["calls"].get(op)]
        assert prof["cnn_op_overhead_s"][f"cnn.{op}"] == pytest.approx(sum(c * v for c, v in have) / sum(c for c, _ in have))
        assert 1e-7 < prof["cnn_op_overhead_s"][f"cnn.{op}"] < 1e-2
    e = prof["eager_ops"]
    # the glue factor: (unprofiled step - profiled GEMM regions) / profiled small ops of the tiny model, clipped
    glue = (e["tiny_unprofiled_step_s"] - e["tiny_profiled_gemm_regions_s"]) / e["tiny_profiled_small_regions_s"]
    assert e["glue_factor"] == pytest.approx(min(max(glue, 0.25), 4.0)) and e["tiny_profiled_gemm_regions_s"] > 0
    for k, v in prof["eager_op_overhead_s"].items():   # 1 us .. 10 ms per call on any machine
        assert 1e-6 < v < 1e-2 and v == pytest.approx(e["profiled_per_call_s"][k] * e["glue_factor"])
    assert 1 <= eng.overlap_p <= 64


def test_microbench_summary_prints_the_tables_the_roofline_reads(campaign):
    from planner.measure.cli import profile_summary
    _, prof, _, _, _ = campaign
    lines = profile_summary({**prof, "vs_previous": None}, "p.json", "acc")
    att = prof["encoder_attention_by_context"]["fp32"]
    # quick: C = 16 and 64 keys (stored as C / 4 bytes per fp32 element)
    assert "encoder attention by keys attended (fp32, GFLOP/s): " + "  ".join(
        f"{c}:{r / 1e9:.0f}" for c, (_, r) in zip((16, 64), att)) in lines
    assert any(x.startswith("convolutions by FLOPs per weight byte (fp32, GFLOP/s): ") for x in lines)
    assert any(x.startswith("CNN small ops, fixed cost per call") and "concat" in x for x in lines)
    assert any(x.endswith("session accelerator id: acc") for x in lines)
    assert all(x.startswith("warning: ") for x in lines[[i for i, x in enumerate(lines) if "accelerator id" in x][0] + 1:])


def test_profile_scales_eager_op_bodies_to_their_measured_time(campaign):
    """The small ops' bodies, timed as the backend runs them at two token counts, become factors on the roofline's
    body time such that the calibrated roofline reproduces the measured growth between the two counts."""
    from planner.api import roofline_rows
    from planner.arch.pipeline import compile_model
    from planner.measure.eager_ops import BODY_OPS, body_spec
    from planner.quant import load_precision
    from planner import catalog
    _, prof, _, _, _ = campaign
    bench = prof["eager_op_bodies"]
    assert set(bench["seconds"]) == set(BODY_OPS) and bench["tokens"] == [16, 128]
    assert all(0 < a < b for a, b in bench["seconds"].values())      # 8x the tokens takes longer
    acc, cal = roofline_for_profile(prof)
    scales = dict(cal.engines["eager"].op_body_scale)
    assert set(scales) <= set(BODY_OPS)
    plan = compile_model(body_spec(bench["arch"]), load_precision("fp32"), {})
    with catalog.use_calibration(cal):
        rows = {m: roofline_rows(plan, acc, "fp32", 1, m, 1, 1, "eager", "prefill") for m in bench["tokens"]}

    def body(name, m):
        r = next(r for r in rows[m] if r["name"] == name)
        return (r["time_s"] - r["overhead_s"]) / r["count"]
    for name, f in scales.items():
        meas = bench["seconds"][name][1] - bench["seconds"][name][0]
        if 0.25 < f < 50:                                                # not clipped
            assert body(name, 128) - body(name, 16) == pytest.approx(meas, rel=1e-6)


def test_run_files_and_metadata(campaign):
    _, _, runs, _, _ = campaign
    r = runs["w8a8"]
    meta, rows = read_run(r["csv"])
    with open(r["csv"]) as f:
        assert f.readline().strip().split(",") == CSV_COLUMNS
    for k in ("device", "model", "precision", "batch", "reps", "date", "command", "layers_measured",
              "layers_total", "phases", "recipe", "device_info", "model_spec", "peak_memory_bytes"):
        assert k in meta
    info = meta["device_info"]
    assert info["torch"] == torch.__version__ and info["packages"]["torch"] and info["threads"] >= 1
    # asked for w8a8 on CPU with the default backend: measured in its CPU form (fbgemm, fp32 activations)
    assert (meta["requested_precision"], meta["precision"]) == ("w8a8", "w8a8-f32")
    assert "fbgemm" in meta["precision_note"] and meta["act_dtype"] == "torch.float32"
    assert meta["recipe"]["int8_backend"] == "fbgemm" and meta["recipe"]["granularity"] == "per-tensor-static"
    assert (meta["layers_measured"], meta["layers_total"]) == (2, 6)
    assert meta["phases"]["decode"]["steps"] == 3
    names = {(x["phase"], x["name"]) for x in rows}
    assert {("prefill", "attn_qkv"), ("decode", "mlp_down"), ("decode", "step")} <= names
    assert all(x["measured_s"] > 0 and x["reps"] == 2 for x in rows)
    qkv = next(x for x in rows if x["phase"] == "prefill" and x["name"] == "attn_qkv")
    assert qkv["scope"] == "layer" and qkv["instances"] == 2            # one per layer built
    for p, run in runs.items():                                          # 2*M*K*N x 2 layers, M = 2 x 16 tokens
        x = next(x for x in read_run(run["csv"])[1] if x["phase"] == "prefill" and x["name"] == "attn_qkv")
        # fbgemm's linears (w8a8 on CPU) take packed weights: their shape is recorded by the recipe's shape event
        assert x["profiler_flops"] == pytest.approx(2 * 2 * 16 * 128 * (128 + 2 * 64) * 2)
    # end to end without the profiler beside the profiled steps; probes of the device state around the phases
    assert {("prefill", "step_profiled"), ("decode", "step_profiled")} <= names
    assert len(meta["device_state_probes"]) == 2 + 2 * 2          # before, one per repetition and phase, after
    probe = meta["device_state_probes"][0]
    assert probe["scheme"] == "fp32"                     # the device's regular kernel, whatever the precision
    assert [(p["m"], p["k"], p["n"]) for p in probe["points"]] == [(1, 512, 512), (64, 512, 512)]  # quick profile
    assert meta["allocator"].startswith("glibc mallopt")
    assert meta["allocator_trims"] == 0 and meta["allocator_guard"].startswith("never trimmed (limit")
    trace = json.loads(gzip.open(r["csv"].replace(".csv", ".trace.json.gz")).read())
    assert any(e.get("name") == "attn_qkv" for e in trace["traceEvents"])


def test_validation_joins_rows_and_reports(campaign):
    _, _, runs, _, _ = campaign
    v = validate_run(runs["w8a8"]["json"])
    for k in ("device", "model", "precision", "op_mdape_pct", "e2e_abs_pct_error", "speedups", "rows"):
        assert k in v
    assert set(v["e2e_abs_pct_error"]) == {"prefill", "decode"}
    joined = {(r["phase"], r["name"]) for r in v["rows"] if r["predicted_s"] and r["measured_s"]}
    assert {("prefill", "attn_qkv"), ("prefill", "mlp_up"), ("decode", "lm_head"), ("decode", "attn_score")} <= joined
    for r in v["rows"]:
        if r["predicted_s"] and r["measured_s"]:
            assert r["error_pct"] == pytest.approx((r["predicted_s"] / r["measured_s"] - 1) * 100)
    st = v["device_state"]                      # probed, and the profile scaled by it: both errors reported
    assert 0 < st["compute"] < 10 and 0 < st["memory"] < 10
    for e in v["e2e"].values():
        assert e["unscaled_profile"]["predicted_s"] > 0
    assert v["scaled_to_device_state"] is True       # the default for a profile whose reference spans its sweep
    v = validate_run(runs["w8a8"]["json"], scale_to_state=False)
    assert v["scaled_to_device_state"] is False
    v2 = validate_run(runs["w8a8"]["json"], scale_to_state=True)       # swapped: the scaled one is the headline
    for ph, e in v2["e2e"].items():
        assert e["predicted_s"] == pytest.approx(v["e2e"][ph]["scaled_to_device_state"]["predicted_s"])
        assert e["unscaled_profile"]["predicted_s"] == pytest.approx(v["e2e"][ph]["predicted_s"])
    w = v["e2e"]["prefill"]["whole_model"]
    assert w["layer_scale"] == 3 and w["layers_total"] == 6
    s = v["speedups"]["w8a8-f32_over_fp32_decode"]
    assert s["measured"] > 0 and s["predicted"] > 0


def test_vision_run_validates(campaign):
    v = validate_run(campaign[3]["json"])
    assert set(v["e2e"]) == {"vision"}
    assert {"patch_embed", "attn_qkv", "head"} <= {r["name"] for r in v["rows"] if r["measured_s"]}


TINY_SWIN = ModelSpec.model_validate({
    "id": "tiny-swin", "name": "tiny swin", "category": "vision", "config_source": "test",
    "arch": {"kind": "swin", "image_size": 56, "patch_size": 4, "window": 7, "embed_dim": 16, "depths": [2, 2],
             "heads": [2, 4], "n_classes": 5}})


def test_swin_runs_in_fp32_and_w8a8_and_validates(campaign):
    root = campaign[0]
    runs = {p: measure_model(TINY_SWIN, p, batch=1, reps=2, out_root=root, progress=False, trace=False)
            for p in ("fp32", "w8a8")}
    assert runs["w8a8"]["recipe"]["smoothed_groups"] == 2 * 4          # norm1 -> qkv and norm2 -> up per block
    assert runs["w8a8"]["recipe"]["quantized_linears"] == 1 + 4 * 4 + 1 + 1   # patch, 4 per block, merge, head
    for r in runs.values():
        v = validate_run(r["json"])
        assert set(v["e2e"]) == {"vision"}
        joined = {x["name"] for x in v["rows"] if x["measured_s"] and x["predicted_s"]}
        assert {"patch_embed", "attn_window", "attn_score", "patch_merge", "mlp_up", "head"} <= joined


def test_validate_cli_table_and_json(campaign, capsys):
    root, _, runs, _, _ = campaign
    assert main(["validate", runs["fp32"]["csv"], "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["precision"] == "fp32" and out["rows"]
    assert main(["validate", str(root)]) == 0
    text = capsys.readouterr().out
    assert "end to end prefill" in text and "speed-up w8a8-f32 over fp32" in text


@pytest.mark.parametrize("args,msg", [
    (["measure", "--model", "nope-7b"], "unknown model"),
    (["measure", "--model", "llama-2-7b", "--batch", "0"], "positive integers"),
    (["measure", "--model", "llama-2-7b", "--precision", "fp8"], "CUDA"),
    (["measure", "--model", "llama-2-7b", "--device", "tpu"], "device must be"),
    (["measure", "--model", "llama-2-7b", "--layers", "1", "--reps", "0"], "--reps must be a positive integer"),
    (["measure", "--model", "r2gengpt", "--layers", "1"], "pipeline"),
    (["measure", "--model", "llama-2-70b"], "--layers"),
    # refused before the first configuration runs: batch 4096 x 4000 tokens of activations (~5 TB)
    (["measure", "--model", "llama-2-7b", "--layers", "1", "--batch", "1,4096", "--input-len", "4000"], "activations"),
    (["validate", "/nonexistent/run.csv"], "not a measured run"),
    (["smoothquant", "--alpha", "2"], "alpha"),
    (["smoothquant", "--granularity", "per-row"], "granularity"),
])
def test_bad_input_is_one_line_exit_2(args, msg, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert msg in err and "\n" not in err


def test_default_repetitions_are_more_on_a_noisy_cpu_host():
    from planner.measure.harness import default_reps
    assert (default_reps("cpu"), default_reps("cuda"), default_reps("cuda:1")) == (9, 5, 5)
    with pytest.raises(Exception, match="reps must be a positive integer, got 0"):
        measure_model(TINY, "fp32", reps=0, out_root=None, progress=False)


def test_microbench_without_cuda_is_refused(capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert main(["microbench", "--device", "cuda"]) == 2
    assert "CUDA is not available" in capsys.readouterr().err


def test_committed_measurements_validate():
    """Every committed run has its metadata, a device profile and validates (figures: benchmarks/cpu_validation.py)."""
    runs = list_measured_runs()
    if not runs:
        pytest.skip("no committed measurements")
    for j in runs:
        meta, _ = read_run(j)
        assert meta["device_info"]["torch"] and meta["reps"] >= 2 and meta["command"]
        v = validate_run(j)
        assert v["rows"] and all(x >= 0 for x in v["e2e_abs_pct_error"].values())


def test_profile_at_median_and_min(campaign):
    """profile_at('median') puts every rate at its typical repetition: GEMM points at their median time, the
    other benchmarks from the 'typical' block; 'min' is the profile as stored."""
    import statistics

    from planner.errors import PlannerError
    from planner.measure.microbench import profile_at
    _, prof, _, _, _ = campaign
    assert profile_at(prof, "min") is prof
    med = profile_at(prof, "median")
    pts = prof["gemm"]["fp32"]["points"]
    want = statistics.median(2 * p["m"] * p["k"] * p["n"] / p["median_s"] for p in pts if p["m"] >= 64)
    assert med["gemm"]["fp32"]["achievable_flops_s"] == pytest.approx(want)
    assert med["gemm"]["fp32"]["achievable_flops_s"] <= prof["gemm"]["fp32"]["achievable_flops_s"]
    for k in ("memory", "vector_flops_s", "attention_flops_s", "conv_flops_s", "pool_elems_s", "eager_op_overhead_s",
              "eager_op_bodies"):
        assert med[k] == prof["typical"][k] and k in prof
    assert med["typical_missing"] == []
    old = {k: v for k, v in prof.items() if k != "typical"}            # a profile from before the typical block
    assert profile_at(old, "median")["typical_missing"] == ["memory", "launch_overhead_s", "vector_flops_s"]
    with pytest.raises(PlannerError, match="statistic must be one of median, min"):
        profile_at(prof, "mean")


def test_validation_compares_like_statistics(campaign):
    """Headline: profile and run at their medians; beside it both at their minima (and --statistic min swaps)."""
    _, _, runs, _, _ = campaign
    rows = read_run(runs["fp32"]["csv"])[1]
    step = {r["phase"]: r for r in rows if r["name"] == "step"}
    v = validate_run(runs["fp32"]["json"])
    assert v["statistic"] == "median"
    for ph, e in v["e2e"].items():
        assert e["measured_s"] == pytest.approx(step[ph]["median_s"])
        assert e["at_min"]["measured_s"] == pytest.approx(step[ph]["min_s"])
        assert e["at_min"]["error_pct"] == pytest.approx((e["at_min"]["predicted_s"] / step[ph]["min_s"] - 1) * 100)
    v2 = validate_run(runs["fp32"]["json"], statistic="min")
    for ph, e in v2["e2e"].items():
        assert e["measured_s"] == pytest.approx(step[ph]["min_s"])
        assert e["predicted_s"] == pytest.approx(v["e2e"][ph]["at_min"]["predicted_s"])
        assert e["at_median"]["predicted_s"] == pytest.approx(v["e2e"][ph]["predicted_s"])


def test_an_fbgemm_run_probes_its_int8_kernel_beside_the_fp32_state():
    """Where the profile swept the int8 kernel's M=128 4096 x 4096 point (or there is no profile yet), a run
    through fbgemm times that point too, before the phases, before every repetition and after them."""
    meta = measure_model(TINY, "w8a8", batch=1, input_len=8, output_len=2, layers=1, reps=1, warmup=0,
                         out_root=None, progress=False, trace=False)
    kp = meta["kernel_state_probes"]
    assert len(kp) == len(meta["device_state_probes"]) == 2 + 2 * 1
    assert all(p["scheme"] == "int8-fbgemm" and [(q["m"], q["k"], q["n"]) for q in p["points"]] == [(128, 4096, 4096)]
               for p in kp)
    assert all(q["seconds"] > 0 for p in kp for q in p["points"])
    fp32 = measure_model(TINY, "fp32", batch=1, input_len=8, output_len=2, layers=1, reps=1, warmup=0,
                         out_root=None, progress=False, trace=False)
    assert fp32["kernel_state_probes"] is None


def test_a_replaced_profile_is_kept_by_its_date(tmp_path):
    """planner microbench moves the profile it replaces to <device>/profiles/profile-<date>.json; the run
    listing does not take it for a run, and a run records the profile in place when it was measured."""
    from planner.measure.runs import archive_profile, find_runs
    path = profile_path(tmp_path, "cpu-test-2t")
    assert archive_profile(path) is None                             # nothing to keep yet
    write_json(path, {"date": "2026-11-23T03:42:00+00:00", "gemm": {}})
    kept = archive_profile(path)
    assert kept == tmp_path / "cpu-test-2t" / "profiles" / "profile-20261123T034200.json"
    assert not path.exists() and json.loads(kept.read_text())["date"].startswith("2026-11-23T03:42")
    write_json(path, {"date": "2026-11-23T03:42:00+00:00", "gemm": {}})   # the same date again: not overwritten
    assert archive_profile(path).name == "profile-20261123T034200-2.json"
    assert find_runs(tmp_path) == []


def test_runs_record_the_profile_they_were_measured_beside(campaign):
    _, prof, runs, _, _ = campaign
    assert read_run(runs["fp32"]["json"])[0]["profile_date_at_run"] == prof["date"]


def test_a_run_is_validated_against_the_profile_of_its_time(campaign, tmp_path):
    """Once a newer microbench has replaced the profile a run was measured beside, validation still finds that
    one (kept under profiles/ by its date); a run whose profile was never kept gets the current one, and one
    that did not record its profile the latest kept before it."""
    import shutil

    from planner.measure.runs import archive_profile
    from planner.validate import find_profile
    root, prof, runs, _, _ = campaign
    dev = prof["device"]
    shutil.copytree(root / dev, tmp_path / dev)
    csv = tmp_path / dev / Path(runs["fp32"]["csv"]).relative_to(root / dev)
    meta = read_run(csv)[0]
    current = profile_path(tmp_path, dev)
    assert find_profile(csv, meta) == current                       # still in place
    kept = archive_profile(current)
    write_json(current, {**prof, "date": "2099-01-01T00:00:00+00:00"})   # a later microbench
    assert find_profile(csv, meta) == kept
    assert validate_run(csv)["profile_date"] == prof["date"]
    assert find_profile(csv, {**meta, "profile_date_at_run": "2026-01-01T00:00:00+00:00"}) == current
    # a run that did not record its profile: the latest one measured before it (the 2099 one is after it), and
    # for a run older than every profile kept, the earliest
    unrecorded = {k: v for k, v in meta.items() if k != "profile_date_at_run"}
    assert find_profile(csv, unrecorded) == kept
    assert find_profile(csv, {**unrecorded, "date": "2000-01-01T00:00:00+00:00"}) == kept
    assert find_profile(csv, {**unrecorded, "date": "2100-01-01T00:00:00+00:00"}) == current


def test_measured_phase_power_is_energy_over_wall_time():
    from planner.measure.power import EnergyCounter, measured_phase_power
    p = measured_phase_power([30.0, 50.0, None], [0.1, 0.15, 0.2])        # 80 J over 0.25 s; the unread one left out
    assert p["power_w"] == pytest.approx(320.0) and p["repetitions"] == 2 and p["energy_j"] == 80.0
    assert measured_phase_power([None, None], [0.1, 0.1]) is None
    assert EnergyCounter("cpu")() is None                                   # no board counter on a CPU


def test_time_phase_reads_the_energy_counter_around_unprofiled_repetitions():
    """The board's energy counter is read before and after each unprofiled repetition (a counter that grows at
    a fixed 250 W here: NVML is not on this machine), so the phase's power is its energy over those seconds."""
    import torch

    from planner.measure.models import STEP_REGION, region
    from planner.measure.power import measured_phase_power
    from planner.measure.profiler import Flusher, time_phase
    a = torch.randn(128, 128)

    def run_rep(flush):
        flush()
        with region(STEP_REGION):
            with region("mlp_up"):
                for _ in range(20):
                    a @ a
    reads = []

    def energy():
        reads.append(time.perf_counter())
        return 250.0 * reads[-1]
    t = time_phase("prefill", run_rep, steps=1, reps=3, warmup=1, device="cpu", flusher=Flusher("cpu", 1 << 20),
                   op_names={"mlp_up"}, energy=energy)
    assert len(reads) == 6 and len(t.rep_energy_j) == 3 and all(e > 0 for e in t.rep_energy_j)
    p = measured_phase_power(t.rep_energy_j, t.rep_wall_s)
    assert p["power_w"] == pytest.approx(250.0, rel=0.05)


def test_validation_compares_measured_board_power(campaign, tmp_path):
    """A run whose phases carry the board's measured power (a CUDA run with NVML) is validated against the
    power model too: idle + (limit - idle) x utilisation on the profile's device, here the CPU profile's 100 W
    limit assumption and 25 W idle (between which every prediction must lie)."""
    import shutil

    from planner.measure.runs import write_json
    root, prof, runs, _, _ = campaign
    dev = prof["device"]
    shutil.copytree(root / dev, tmp_path / dev)
    js = tmp_path / dev / Path(runs["fp32"]["json"]).relative_to(root / dev)
    meta = read_run(js)[0]
    meta["phases"]["prefill"]["power"] = {"power_w": 50.0, "energy_j": 5.0, "wall_s": 0.1, "repetitions": 2}
    write_json(js, meta)
    v = validate_run(js)
    pw = v["e2e"]["prefill"]["power"]
    assert 25.0 <= pw["predicted_w"] <= 100.0 and pw["measured_w"] == 50.0
    assert pw["error_pct"] == pytest.approx((pw["predicted_w"] / 50.0 - 1) * 100)
    assert "power" not in v["e2e"]["decode"]                               # no reading, no comparison


def test_validation_warns_when_the_profile_was_taken_in_a_slow_spell(campaign, tmp_path):
    """planner validate compares the run's profile with the device's profiles measured before it (kept under
    profiles/): one that read the host at half their speed is named in a warning; a profile with nothing before
    it gets none."""
    import copy
    import shutil

    from planner.measure.runs import archived_profile_path, write_json
    root, prof, runs, _, _ = campaign
    dev = prof["device"]
    shutil.copytree(root / dev, tmp_path / dev)
    csv = tmp_path / dev / Path(runs["fp32"]["csv"]).relative_to(root / dev)
    assert validate_run(csv)["profile_drift"] is None
    fast = copy.deepcopy(prof)
    fast["date"] = "2026-01-01T00:00:00+00:00"
    for pr in fast["probe_reference"]:
        for pt in pr["points"]:
            pt["seconds"] /= 2.0                       # the host ran twice as fast then
    write_json(archived_profile_path(profile_path(tmp_path, dev), fast["date"]), fast)
    note = validate_run(csv)["profile_drift"]
    assert note is not None and "x0.50" in note and "2026-01-01" in note
