"""Pure dashboard pieces: figure builders (data -> plotly Figure), table shaping and upload parsing."""
import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

import planner
from planner.dashboard import figures, tables, upload
from planner.errors import PlannerError


def _roof(gpu="h100-sxm", precision="bf16"):
    acc = planner.load_gpu(gpu)
    ridge = planner.ridge_point(gpu, precision)
    return {"gpu": gpu, "dtype": precision, "bandwidth_bytes_s": acc.bandwidth_bytes_s,
            "peak_flops": ridge * acc.bandwidth_bytes_s, "ridge": ridge}


@pytest.fixture(scope="module")
def ops():
    df = planner.roofline_table("h100-sxm", "llama-3-8b", "bf16", batch=8, input_len=512, output_len=128)
    df.insert(0, "gpu", "h100-sxm")
    return df


def test_roofline_figure_places_ops_at_their_intensity(ops):
    pts = tables.op_points(ops)
    fig = figures.roofline_figure(pts, [_roof()], "t")
    assert isinstance(fig, go.Figure)
    assert fig.layout.xaxis.type == "log" and fig.layout.yaxis.type == "log"
    op_traces = [t for t in fig.data if t.name.endswith("· h100-sxm") and "ops" in t.name]
    assert {t.name.split(" ")[0] for t in op_traces} == {"prefill", "decode"}
    dec = next(t for t in op_traces if t.name.startswith("decode"))
    d = pts[pts["phase"] == "decode"]
    np.testing.assert_allclose(sorted(dec.x), sorted(d["intensity"]))
    # no op beats the datasheet roof: achieved <= min(peak, bandwidth x intensity)
    r = _roof()
    roof_at = np.minimum(r["peak_flops"], r["bandwidth_bytes_s"] * pts["intensity"])
    assert (pts["flops_per_s"] <= roof_at * 1.0001).all()
    ridge = next(t for t in fig.data if t.name == "h100-sxm ridge")
    assert ridge.x[0] == pytest.approx(planner.ridge_point("h100-sxm", "bf16"))


def test_op_points_drops_ops_without_flops_or_bytes(ops):
    pts = tables.op_points(ops)
    assert len(pts) < len(ops)
    assert (pts["flops"] > 0).all() and np.isfinite(pts["intensity"]).all()


def test_decode_intensity_grows_with_batch():
    t = {b: planner.roofline_table("h100-sxm", "llama-3-8b", "bf16", batch=b, input_len=512, output_len=128)
         .assign(gpu="h100-sxm") for b in (1, 16, 64)}
    ph = tables.phase_points(t)
    dec = ph[ph["phase"] == "decode"].sort_values("batch")
    assert dec["intensity"].is_monotonic_increasing
    fig = figures.batch_trajectory_figure(ph, [_roof()], "t")
    assert any(tr.name == "decode · h100-sxm" and list(tr.text) == ["b1", "b16", "b64"] for tr in fig.data)


def test_compare_table_restates_api_numbers_per_study():
    df = planner.sweep(gpus=["h100-sxm", "t4"], models=["llama-3-8b"], precisions=["bf16", "fp8"], batches=[8],
                       input_lens=[512], output_lens=[128], tps=[1])
    prices = {"h100-sxm": 2.0, "t4": None}
    t = tables.compare_table(df, prices, "llm")
    h = t[(t.gpu == "h100-sxm") & (t.precision == "bf16")].iloc[0]
    r = planner.estimate("h100-sxm", "llama-3-8b", "bf16", batch=8, input_len=512, output_len=128)
    assert h["latency_s"] == pytest.approx(r["e2e_s"])
    assert h["per_joule"] == pytest.approx(1 / r["energy_j_per_token"])
    # $2/GPU-h, one GPU, 8 studies per e2e seconds -> per 1,000 studies
    assert h["usd_per_1000_studies"] == pytest.approx(2.0 / 3600 * r["e2e_s"] / 8 * 1000)
    t4 = t[(t.gpu == "t4") & (t.precision == "fp8")].iloc[0]
    assert t4["status"] == "precision not supported" and math.isnan(t4["latency_s"])
    fig = figures.compare_figure(t, {"latency_s": "s"}, "t")
    assert len(fig.data) == 8 and {tr.name for tr in fig.data} == {"bf16", "fp8"}


def test_quant_table_speedups_are_ratios_of_predicted_times():
    res = {p: planner.estimate("h100-sxm", "llama-3-8b", p, batch=8, input_len=512, output_len=128)
           for p in ("bf16", "fp8")}
    res["w8a8-o1"] = "not supported"
    t = tables.quant_table(res, "bf16")
    fp8 = t[t.precision == "fp8"].iloc[0]
    assert fp8["speedup_tpot"] == pytest.approx(res["bf16"]["tpot_s"] / res["fp8"]["tpot_s"])
    assert fp8["weights_gb"] < t[t.precision == "bf16"].iloc[0]["weights_gb"]
    assert t[t.precision == "w8a8-o1"].iloc[0]["status"] == "not supported"
    assert len(figures.quant_memory_figure(t, 80, "t").data) == 4
    assert {tr.name for tr in figures.quant_speedup_figure(t, "bf16", "t").data} >= {"TTFT (prefill)", "end to end"}


PLAN = {"options": [
    {"gpu": "h100-sxm", "count": 2, "precision": "fp8", "tp": 1, "p95_latency_s": 4.0, "meets_target": True,
     "tco_per_year_usd": 50000, "cost_per_1000_studies_usd": 40.0, "energy_kwh_per_year": 9000,
     "capex_per_year_usd": 30000, "energy_per_year_usd": 2000},
    {"gpu": "l40s", "count": 4, "precision": "fp8", "tp": 1, "p95_latency_s": 8.0, "meets_target": True,
     "tco_per_year_usd": 45000, "cost_per_1000_studies_usd": 35.0, "energy_kwh_per_year": 11000},
    {"gpu": "l4", "count": 8, "precision": "w8a8", "tp": 1, "p95_latency_s": 30.0, "meets_target": False,
     "tco_per_year_usd": 60000, "cost_per_1000_studies_usd": 48.0, "energy_kwh_per_year": 7000}],
    "pareto": [0, 1], "recommendation": {"gpu": "l40s", "count": 4, "precision": "fp8", "tp": 1},
    "assumptions": [{"name": "server_share_usd", "value": 10000, "unit": "USD", "source": "assumption"}],
    "utilisation_by_hour": {0: [0.1] * 24, 1: {str(h): 0.2 for h in range(24)}}}


def test_plan_tables_and_figures():
    o = tables.options_frame(PLAN)
    assert list(o["rank"]) == [1, 2, 3]
    assert list(o["on_pareto"]) == [True, True, False]
    assert list(o["recommended"]) == [False, True, False]
    u = tables.utilisation_frame(PLAN, list(o["option"]))
    assert len(u) == 48 and set(u["option"]) == set(o["option"][:2])
    cb = tables.cost_breakdown({**PLAN["options"][0], "cloud_on_demand_per_year_usd": 70000})
    assert dict(zip(cb["item"], cb["usd_per_year"])) == {"capex": 30000, "energy": 2000, "cloud on demand": 70000}
    assert list(cb["bar"]) == ["on-premise TCO", "on-premise TCO", "cloud on demand"]
    fig = figures.pareto_figure(o, "tco_per_year_usd", "t")
    assert {t.name for t in fig.data} == {"meets target", "misses target", "Pareto set", "recommended"}
    assert len(figures.utilisation_figure(u, "t").data) == 2
    assert len(figures.cost_breakdown_figure(cb, "t").data) == 3
    shown = tables.options_display(tables.options_frame({**PLAN, "options": [{**o, "workloads": [{}]} for o in PLAN["options"]]}))
    assert list(shown.columns[:4]) == ["rank", "option", "gpu", "count"] and "workloads" not in shown
    assert tables.options_frame({"options": []}).empty


def test_measured_tables_and_figures():
    v = {"device": "cpu", "model": "llama-2-7b", "precision": "fp32", "op_mdape_pct": 9.0,
         "e2e_abs_pct_error": {"prefill": 5.0, "decode": 12.0},
         "speedups": {"w8a8 over fp32": {"measured": 1.5, "predicted": 1.65}},
         "rows": [{"phase": "prefill", "name": "mlp_up", "predicted_s": 1.1e-3, "measured_s": 1e-3, "error_pct": 10.0},
                  {"phase": "decode", "name": "mlp_up", "predicted_s": 1e-4, "measured_s": 1.25e-4}]}
    rows = tables.measured_rows(v)
    assert rows["error_pct"].iloc[1] == pytest.approx(-20.0)
    sp = tables.speedups(v)
    assert sp["error_pct"].iloc[0] == pytest.approx(10.0)
    s = tables.runs_summary({"run-a": v, "run-b": "cannot validate: x"})
    assert s["e2e_worst_abs_pct_error"].iloc[0] == 12.0 and s["status"].iloc[1].startswith("cannot")
    fig = figures.measured_scatter_figure(rows, "t")
    names = [t.name for t in fig.data]
    assert "y = x" in names and "±10 %" in names and "±25 %" in names and "prefill" in names
    assert len(figures.e2e_error_figure(tables.e2e_errors(v), "t").data) == 1


@pytest.mark.parametrize("outliers", [
    {"before": [1.0, 50.0, 2.0], "after": [1.5, 6.0, 2.0]},
    {"layer0.qkv": {"before": [1.0, 50.0, 2.0], "after": [1.5, 6.0, 2.0]}},
    [{"channel": 0, "before": 1.0, "after": 1.5}, {"channel": 1, "before": 50.0, "after": 6.0},
     {"channel": 2, "before": 2.0, "after": 2.0}],
])
def test_study_outlier_shapes(outliers):
    out = tables.study_outliers({"outliers": outliers})
    assert len(out) == 6
    before = out[out["stage"] == "before smoothing"]["max_abs"].max()
    after = out[out["stage"] == "after smoothing"]["max_abs"].max()
    assert (before, after) == (50.0, 6.0)
    assert len(figures.outliers_figure(out, "t").data) == 2


def test_smoothquant_figure():
    rows = tables.study_rows({"rows": [{"alpha": a, "granularity": g, "mean_cosine": 0.99, "min_cosine": 0.9}
                                       for a in (0, 0.5, 1) for g in ("per-token", "per-tensor-static")]})
    fig = figures.smoothquant_figure(rows, "t")
    assert len(fig.data) == 4 and list(fig.data[0].x) == [0, 0.5, 1]


def test_empty_inputs_give_figures_not_errors():
    for fig in (figures.roofline_figure(pd.DataFrame(), [_roof()], "t"),
                figures.measured_scatter_figure(pd.DataFrame(), "t"),
                figures.utilisation_figure(pd.DataFrame(columns=["option", "hour", "utilisation"]), "t"),
                figures.cost_breakdown_figure(pd.DataFrame(columns=["item", "usd_per_year"]), "t"),
                figures.pareto_figure(pd.DataFrame(), "x", "t")):
        assert isinstance(fig, go.Figure)


# ------------------------------------------------------------------------------------------ uploads

GOOD = (planner.catalog.HW_DIR / "l40s.yaml").read_text().replace("id: l40s", "id: my-gpu")


def test_good_upload_parses():
    acc = upload.parse_accelerator_upload(GOOD.encode(), "my-gpu.yaml")
    assert acc.id == "my-gpu" and acc.memory.capacity_gb == 48


@pytest.mark.parametrize("data,name,needle", [
    (GOOD.replace("tdp_w: 350", "tdp_w: -5"), "my-gpu.yaml", "field 'power.tdp_w'"),
    (GOOD.replace("  capacity_gb: 48\n", "  capacity_gb: 48\n  capacity_typo: 1\n"), "my-gpu.yaml", "capacity_typo"),
    (GOOD, "other.yaml", "field 'id'"),
    ("id: [unclosed", "x.yaml", "not valid YAML"),
    ("- a\n- b\n", "x.yaml", "expected a mapping"),
    ("!!python/object/apply:os.system ['true']", "x.yaml", "not valid YAML"),
])
def test_bad_uploads_name_the_problem(data, name, needle):
    with pytest.raises(PlannerError) as e:
        upload.parse_accelerator_upload(data.encode(), name)
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_upload_limits():
    with pytest.raises(PlannerError, match="KiB limit"):
        upload.load_yaml_bytes(b"a: 1\n" * 100_000, "big.yaml")
    with pytest.raises(PlannerError, match="UTF-8"):
        upload.load_yaml_bytes(b"\xff\xfe\x00", "bin.yaml")
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n" for p, c in zip("abcde", "bcdef"))
    with pytest.raises(PlannerError, match="aliases"):
        upload.load_yaml_bytes(bomb.encode(), "bomb.yaml")


def test_department_upload_without_capacity_module_says_so(monkeypatch):
    monkeypatch.delattr(planner.catalog, "load_department", raising=False)
    with pytest.raises(PlannerError, match="load_department"):
        upload.parse_department_upload(b"workloads: []\n", "dept.yaml")


def test_department_upload_hands_a_file_to_the_catalog(monkeypatch):
    seen = {}

    def load_department(path):
        seen["data"] = planner.catalog.read_yaml(path)
        raise PlannerError(f"{path}: field 'workloads' is empty")
    monkeypatch.setattr(planner.catalog, "load_department", load_department, raising=False)
    with pytest.raises(PlannerError) as e:
        upload.parse_department_upload(b"workloads: []\n", "dept.yaml")
    assert seen["data"] == {"workloads": []}
    assert str(e.value).startswith("dept.yaml") and "radplan-upload" not in str(e.value)
