"""Every dashboard page driven through Streamlit's AppTest: widgets change the numbers, the URL carries the
main choices, missing parts of the project show a plain message, and errors never become tracebacks.

Pages that show other issues' results (capacity plans, measured runs, the SmoothQuant study) are also driven
with stand-ins that follow those issues' documented contracts."""
import json
import sys
import types
from pathlib import Path

import pydantic
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

import planner
from planner import catalog
from planner.dashboard import loaders
from planner.errors import PlannerError

APP = str(Path(__file__).resolve().parent.parent / "streamlit_app.py")
PAGES = ["plan", "roofline", "compare", "quantization", "measured", "hardware"]


@pytest.fixture(autouse=True)
def _fresh_caches():
    st.cache_data.clear()
    yield
    st.cache_data.clear()


def open_page(page: str, **query) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params.update(query)
    at.switch_page(f"planner/dashboard/pages/{page}.py")     # url paths are the file stems, so no first run
    at.run()
    return at


def assert_clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def metric(at: AppTest, label_start: str) -> str:
    return next(m.value for m in at.metric if m.label.startswith(label_start))


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_without_error(page):
    at = open_page(page)
    assert_clean(at)
    assert at.title[0].value


# ------------------------------------------------------------------------------------------ roofline


def test_roofline_widgets_move_numbers_chart_and_url():
    at = open_page("roofline")
    assert_clean(at)
    assert len(at.get("plotly_chart")) == 2
    decode8 = metric(at, "Decode step")
    at.select_slider(key="qp_batch").set_value(64).run()
    assert_clean(at)
    assert metric(at, "Decode step") != decode8
    assert at.query_params["batch"] == ["64"] or at.query_params["batch"] == "64"
    at.multiselect(key="qp_gpus").set_value(["l4"]).run()
    assert metric(at, "Ridge point · l4")
    at.selectbox(key="qp_model").set_value("densenet-121").run()
    assert_clean(at)
    assert metric(at, "Vision encode")
    at.selectbox(key="qp_precision").set_value("w8a8").run()
    assert_clean(at)


def _q(at, k):
    v = at.query_params[k]
    return v[0] if isinstance(v, list) else v


def test_roofline_url_reproduces_the_view_with_api_numbers():
    at = open_page("roofline", model="mistral-7b", gpus="l40s", precision="fp8", batch="32", **{"in": "1024"})
    assert_clean(at)
    assert at.selectbox(key="qp_model").value == "mistral-7b"
    assert at.multiselect(key="qp_gpus").value == ["l40s"]
    assert at.number_input(key="qp_in").value == 1024
    df = planner.roofline_table("l40s", "mistral-7b", "fp8", batch=32, input_len=1024, output_len=128)
    want = df[df["phase"] == "prefill"]["time_s"].sum() * 1e3
    assert metric(at, "Prefill") == f"{want:.4g} ms"
    assert (_q(at, "model"), _q(at, "batch"), _q(at, "gpus")) == ("mistral-7b", "32", "l40s")


def test_choices_carry_across_pages_within_their_limits():
    at = open_page("compare", model="mistral-7b", gpus="h100-sxm,h200-sxm,l40s,l4,t4,a10")
    assert_clean(at)
    at.switch_page("planner/dashboard/pages/roofline.py").run()
    assert_clean(at)
    assert at.selectbox(key="qp_model").value == "mistral-7b"      # the same model on the next page
    assert len(at.multiselect(key="qp_gpus").value) <= 4           # the roofline chart takes at most four


def test_bad_url_values_fall_back_to_defaults():
    at = open_page("roofline", model="no-such-model", batch="banana", gpus="nope,h100-sxm")
    assert_clean(at)
    assert at.selectbox(key="qp_model").value == "llama-3-8b"
    assert at.multiselect(key="qp_gpus").value == ["h100-sxm"]


def test_unsupported_precision_is_an_inline_error():
    at = open_page("roofline", gpus="t4", precision="fp8")
    assert not at.exception
    assert any("not supported on t4" in e.value for e in at.error)


# ------------------------------------------------------------------------------------------ compare / quantization


def test_compare_page_widgets():
    at = open_page("compare")
    assert_clean(at)
    cheap = metric(at, "Cheapest")
    at.multiselect(key="qp_precisions").set_value(["bf16", "fp8", "w4a16", "fp32"]).run()
    assert_clean(at)
    at.multiselect(key="qp_gpus").set_value(["t4", "l4", "h100-sxm"]).run()   # t4 has no fp8: shown as a note
    assert_clean(at)
    assert any("t4 fp8 (precision not supported)" in c.value for c in at.caption)
    at.number_input(key="qp_out").set_value(400).run()
    assert_clean(at)
    assert metric(at, "Cheapest") != cheap
    at.selectbox(key="qp_model").set_value("resnet-50").run()
    assert_clean(at)
    assert metric(at, "Highest throughput (images/s)")


def test_quantization_page_predictions_and_study(tmp_path, monkeypatch):
    monkeypatch.setattr(loaders, "SMOOTHQUANT_STUDY", tmp_path / "absent.json")   # the study not run yet
    st.cache_data.clear()
    at = open_page("quantization")
    assert_clean(at)
    assert len(at.get("plotly_chart")) == 2
    assert any("not there yet" in i.value for i in at.info)
    at.selectbox(key="qp_gpu").set_value("v100-sxm2-32gb").run()      # no bf16, fp8 or int8 peaks
    assert not at.exception
    assert any("baseline bf16 does not run here" in w.value for w in at.warning)
    study = {"model": "all-MiniLM-L6-v2",
             "rows": [{"alpha": a, "granularity": g, "mean_cosine": 0.99 - 0.01 * a, "min_cosine": 0.9}
                      for a in (0, 0.5, 1) for g in ("per-token", "per-tensor-static")],
             "outliers": {"layer0": {"before": [1, 40, 2], "after": [2, 7, 2]},
                          "layer1": {"before": [3, 30, 2], "after": [3, 6, 2]}}}
    f = tmp_path / "study.json"
    f.write_text(json.dumps(study))
    monkeypatch.setattr(loaders, "SMOOTHQUANT_STUDY", f)
    st.cache_data.clear()
    at = open_page("quantization")
    assert_clean(at)
    assert len(at.get("plotly_chart")) == 4
    at.selectbox(key="q_layer").set_value("layer1").run()
    assert_clean(at)
    f.write_text("{not json")
    st.cache_data.clear()
    at = open_page("quantization")
    assert not at.exception and any("cannot read the study" in e.value for e in at.error)


# ------------------------------------------------------------------------------------------ hardware


def test_hardware_page_table_sources_and_filters():
    at = open_page("hardware", gpu="l40s")
    assert_clean(at)
    assert at.selectbox(key="qp_gpu").value == "l40s"
    at.multiselect(key="qp_kinds").set_value(["cpu"]).run()
    assert_clean(at)
    assert _q(at, "kinds") == "cpu"
    at.selectbox(key="qp_gpu").set_value("mi300x").run()
    assert any("AMD" in m.value for m in at.markdown)


def _session_script():
    import streamlit as st

    from planner import catalog
    from planner.dashboard import state
    from planner.errors import PlannerError
    acc = catalog.parse_accelerator(
        {**catalog.read_yaml(catalog.HW_DIR / "l40s.yaml"), "id": st.session_state.get("want_id", "my-gpu")}, "x")
    try:
        state.add_accelerator(acc)
        st.write("added")
    except PlannerError as e:
        st.error(str(e))
    st.write(",".join(state.visible_gpus()))
    st.write(state.specs_fingerprint())


def test_uploaded_accelerators_belong_to_their_session():
    a = AppTest.from_function(_session_script)
    a.run()
    try:
        assert a.markdown[0].value == "added" and "my-gpu" in a.markdown[1].value and a.markdown[2].value
        b = AppTest.from_function(_session_script)
        b.run()                                               # another browser session: same id refused
        assert "in use by another browser session" in b.error[0].value
        assert "my-gpu" not in b.markdown[-2].value.split(",")
        c = AppTest.from_function(_session_script)
        c.session_state["want_id"] = "h100-sxm"
        c.run()
        assert "is a shipped accelerator" in c.error[0].value
        assert planner.load_gpu("h100-sxm").memory.capacity_gb == 80
    finally:
        from planner.dashboard import state
        state._owner.pop("my-gpu", None)
        catalog.unregister_accelerator("my-gpu")


# ------------------------------------------------------------------------------------------ plan (issue 4 contract)


class FakeWorkload(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")
    id: str
    model: str
    daily_volume: int
    p95_target_s: float


def _option(gpu, count, p95, tco, meets=True):
    return {"gpu": gpu, "count": count, "precision": "fp8", "tp": 1, "p95_latency_s": p95, "meets_target": meets,
            "tco_per_year_usd": tco, "cost_per_1000_studies_usd": tco / 1000, "energy_kwh_per_year": 5000 * count,
            "capex_per_year_usd": tco * 0.7, "energy_per_year_usd": tco * 0.1}


@pytest.fixture
def capacity(monkeypatch):
    calls = []
    presets = {"report-error-check-llama3-70b": FakeWorkload(id="report-error-check-llama3-70b", model="llama-3-70b",
                                                             daily_volume=2700, p95_target_s=10.0),
               "ed-cxr-draft-r2gengpt": FakeWorkload(id="ed-cxr-draft-r2gengpt", model="r2gengpt", daily_volume=200,
                                                     p95_target_s=60.0)}

    def plan(workload, gpus=None, precisions=None, years=4, growth=0.05, electricity_usd_per_kwh=0.13, pue=1.6,
             seed=0, **cost_overrides):
        w = presets[workload] if isinstance(workload, str) else workload
        if set(cost_overrides) - {"server_usd_per_gpu"}:
            raise TypeError(f"unexpected keyword {sorted(cost_overrides)}")
        calls.append(dict(workload=w, gpus=gpus, growth=growth, electricity=electricity_usd_per_kwh,
                          overrides=cost_overrides))
        if w.p95_target_s < 1:
            raise PlannerError("no accelerator meets p95 0.5 s; closest: 8 x h200-sxm at 0.9 s")
        scale = w.daily_volume / 1000 * (1 + growth)
        opts = [_option("h100-sxm", 2, 4.0, 60000 * scale), _option("l40s", 4, 8.0, 50000 * scale),
                _option("l4", 8, 30.0, 70000 * scale, meets=False)]
        return {"options": opts, "pareto": [0, 1], "recommendation": opts[1],
                "assumptions": [{"name": "server_usd_per_gpu", "value": cost_overrides.get("server_usd_per_gpu", 7500),
                                 "unit": "USD", "source": "assumption"},
                                {"name": "electricity_usd_per_kwh", "value": electricity_usd_per_kwh, "unit": "USD/kWh",
                                 "source": "input"},
                                {"name": "engine", "value": "optimized", "unit": "", "source": "input"},
                                {"name": "w.target.p95_latency_s", "value": w.p95_target_s, "unit": "s",
                                 "source": "input"}],
                "utilisation_by_hour": {0: [0.3] * 24, 1: [0.5] * 24}, "closest": None}

    mod = types.ModuleType("planner.capacity")
    mod.plan = plan
    rep = types.ModuleType("planner.report")
    rep.plan_report_html = lambda p: "<html><body>report " + str(len(p["options"])) + "</body></html>"
    monkeypatch.setitem(sys.modules, "planner.capacity", mod)
    monkeypatch.setitem(sys.modules, "planner.report", rep)
    monkeypatch.setattr(catalog, "list_workloads", lambda: sorted(presets), raising=False)
    monkeypatch.setattr(catalog, "load_workload", lambda i: presets[i], raising=False)
    return calls


def test_plan_page_without_capacity_module_says_what_produces_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "planner.capacity", None)      # import fails as if the file were absent
    at = open_page("plan")
    assert_clean(at)
    assert any("not there yet" in i.value and "planner plan" in i.value for i in at.info)


def test_plan_page_with_the_real_planner():
    pytest.importorskip("planner.capacity", reason="capacity planning (issue 4) is not in this tree yet")
    if "ed-cxr-draft-r2gengpt" not in catalog.list_workloads():
        pytest.skip("the ED chest X-ray preset is not there")
    at = open_page("plan", preset="ed-cxr-draft-r2gengpt", gpus="l40s,l4", precisions="fp8,w8a8")
    assert_clean(at)
    assert at.success or at.warning
    assert len(at.get("plotly_chart")) == 3
    tco = metric(at, "TCO per year")
    at.number_input(key="plan_field_ed-cxr-draft-r2gengpt_arrivals.daily_volume").set_value(1000.0)
    _submit(at)
    assert_clean(at)
    assert metric(at, "TCO per year") != tco                       # five times the volume costs more


def test_plan_page_on_the_capacity_contract(capacity):
    at = open_page("plan", preset="report-error-check-llama3-70b")
    assert_clean(at)
    assert at.success[0].value.startswith("Recommended: **#2 4 x l40s fp8**")
    assert len(at.get("plotly_chart")) == 3                       # Pareto, cost breakdown, utilisation
    assert len(at.get("download_button")) == 3                    # CSV, JSON, HTML report
    tco = metric(at, "TCO per year")
    # growth and a workload field: nothing re-plans until the form is submitted
    at.number_input(key="qp_growth").set_value(0.5)
    at.number_input(key="plan_field_report-error-check-llama3-70b_daily_volume").set_value(5400)
    _submit(at)
    assert_clean(at)
    assert capacity[-1]["growth"] == 0.5 and capacity[-1]["workload"].daily_volume == 5400
    assert metric(at, "TCO per year") != tco
    assert _q(at, "growth") == "0.5"
    at.selectbox(key="qp_preset").set_value("ed-cxr-draft-r2gengpt").run()
    assert_clean(at)


def test_plan_page_price_override_and_planner_errors(capacity):
    at = open_page("plan", preset="report-error-check-llama3-70b")
    assert_clean(at)
    assert at.data_editor, "the assumptions editor appears after the first plan"
    at.session_state["plan_prices"] = {"edited_rows": {0: {"value": 25000}}, "added_rows": [], "deleted_rows": []}
    _submit(at)
    assert_clean(at)
    assert capacity[-1]["overrides"] == {"server_usd_per_gpu": 25000.0}
    at.number_input(key="plan_field_report-error-check-llama3-70b_p95_target_s").set_value(0.5)
    _submit(at)
    assert not at.exception
    assert any("no accelerator meets p95 0.5 s" in e.value for e in at.error)


def _submit(at):
    at.button(key="FormSubmitter:plan_form-Plan").click().run()


# ------------------------------------------------------------------------------------------ measured (issue 3 contract)


def test_measured_page_on_the_validation_contract(monkeypatch):
    runs = ["data/measurements/cpu/llama-2-7b/fp32/run1.csv", "data/measurements/h100/llama-2-7b/w8a8/run1.csv"]

    def validate_run(path):
        if "h100" in path:
            raise PlannerError(f"{path}: metadata lacks 'device'")
        return {"device": "cpu", "model": "llama-2-7b", "precision": "fp32", "op_mdape_pct": 8.5,
                "profile_date": "2026-11-22T23:48:32+00:00", "scaled_to_device_state": True,
                "device_state": {"compute": 1.219, "memory": 1.124},
                "e2e_abs_pct_error": {"prefill": 4.0, "decode": 9.0},
                "speedups": [{"name": "w8a8 over fp32", "measured": 1.4, "predicted": 1.5}],
                "rows": [{"phase": ph, "name": n, "predicted_s": t * 1.1, "measured_s": t, "error_pct": 10.0}
                         for ph in ("prefill", "decode") for n, t in (("attn_qkv", 1e-3), ("mlp_up", 3e-3))]}
    import planner.validate as v
    monkeypatch.setattr(v, "list_measured_runs", lambda: runs, raising=False)
    monkeypatch.setattr(v, "validate_run", validate_run, raising=False)
    at = open_page("measured")
    assert_clean(at)
    assert len(at.get("plotly_chart")) == 2
    assert metric(at, "Per-op MdAPE") == "8.5 %"
    assert any("scaled to the device state the run probed (compute x1.22, memory x1.12)" in c.value for c in at.caption)
    at.selectbox(key="qp_run").set_value(runs[1]).run()
    assert not at.exception
    assert any("metadata lacks 'device'" in e.value for e in at.error)


# ------------------------------------------------------------------------------------------ never a traceback


def test_an_internal_failure_is_one_line_not_a_traceback(monkeypatch):
    from planner.dashboard import tables

    def boom(*a, **k):
        raise RuntimeError("synthetic failure")
    monkeypatch.setattr(tables, "compare_table", boom)
    at = open_page("compare")
    assert not at.exception
    assert any("Internal error on this page: RuntimeError: synthetic failure" in e.value for e in at.error)
