"""Capacity planning (planner.capacity.plan): the issue's sanity check, ranking and JSON contract, costs that
add up, co-location in a department, growth, impossible targets and bad input."""
from __future__ import annotations

import json
import time

import pytest

from planner import catalog
from planner.capacity import pareto_ids, plan
from planner.cost import CostParams, fleet_costs
from planner.errors import PlannerError, UnknownIdError
from planner.workload_specs import Workload

OPTION_KEYS = ("gpu", "count", "precision", "tp", "p95_latency_s", "meets_target", "tco_per_year_usd",
               "cost_per_1000_studies_usd", "energy_kwh_per_year")


@pytest.fixture(scope="module")
def error_check():
    return plan("report-error-check-llama3-70b", gpus=["h100-sxm"], precisions=["bf16", "fp8"], max_options=6)


def test_sanity_check_70b_needs_two_80gb_gpus_in_bf16_or_one_in_fp8(error_check):
    opts = error_check["options"]
    bf16 = [o for o in opts if o["precision"] == "bf16"]
    fp8 = [o for o in opts if o["precision"] == "fp8"]
    assert bf16 and min(o["count"] for o in bf16) == 2 and all(o["tp"] >= 2 for o in bf16)
    assert fp8 and min(o["count"] for o in fp8) == 1
    best = error_check["recommendation"]
    assert (best["gpu"], best["count"], best["precision"], best["tp"]) == ("h100-sxm", 1, "fp8", 1)
    assert best["p95_latency_s"] <= 10 and best["meets_target"]


def test_plan_json_contract(error_check):
    r = json.loads(json.dumps(error_check))                 # JSON-serialisable, no NaN
    assert r["feasible"] and r["options"]
    for o in r["options"]:
        for k in OPTION_KEYS:
            assert k in o
        assert len(r["utilisation_by_hour"][o["id"]]) == 24
    tcos = [o["tco_per_year_usd"] for o in r["options"]]
    assert tcos == sorted(tcos)                              # best (cheapest) first
    assert r["recommendation"]["id"] == r["options"][0]["id"] and len(r["alternatives"]) <= 2
    assert set(r["pareto"]) <= {o["id"] for o in r["options"]} and r["pareto"]
    for a in r["assumptions"]:
        assert set(a) >= {"name", "value", "unit", "source"} and str(a["source"]).strip()
    names = {a["name"] for a in r["assumptions"]}
    assert {"pue", "electricity_usd_per_kwh", "report-error-check-llama3-70b.arrivals.daily_volume"} <= names
    assert r["validation"]["fit_mdape_pct"] == catalog.load_calibration().fit_mdape_pct
    assert "in-sample" in r["validation"]["basis"]
    assert {row["usd_per_kwh"] for row in r["sensitivity"]["electricity"]} >= {0.13, 0.30}


def test_option_costs_add_up(error_check):
    o = error_check["options"][0]
    acc = catalog.load_gpu(o["gpu"])
    again = fleet_costs(acc, o["count"], o["gpu_energy_kwh_per_year"], 2700 * 365, CostParams())
    assert again["tco_per_year_usd"] == pytest.approx(o["tco_per_year_usd"])
    assert o["tco_per_year_usd"] == pytest.approx(o["capex_per_year_usd"] + o["maintenance_per_year_usd"]
                                                  + o["energy_cost_per_year_usd"])
    assert o["cost_per_1000_studies_usd"] == pytest.approx(o["tco_per_year_usd"] / (2700 * 365) * 1000)
    # board energy from the simulated day: at least idle power around the clock, at most TDP
    idle, tdp = (w * o["count"] * 8760 / 1000 for w in (acc.power.idle_w, acc.power.tdp_w))
    assert idle < o["gpu_energy_kwh_per_year"] < tdp


def test_pareto_set_is_non_dominated():
    opts = [{"id": "a", "meets_target": True, "tco_per_year_usd": 1, "p95_vs_target": 0.9, "energy_kwh_per_year": 5},
            {"id": "b", "meets_target": True, "tco_per_year_usd": 2, "p95_vs_target": 0.5, "energy_kwh_per_year": 5},
            {"id": "c", "meets_target": True, "tco_per_year_usd": 3, "p95_vs_target": 0.6, "energy_kwh_per_year": 6},
            {"id": "d", "meets_target": True, "tco_per_year_usd": None, "p95_vs_target": 0.1, "energy_kwh_per_year": 1}]
    assert pareto_ids(opts) == ["a", "b"]


def test_department_shares_one_fleet():
    r = plan("example-academic-centre", gpus=["mi300x", "l40s"], precisions=["fp8"], max_options=3, growth=0.05)
    best = r["recommendation"]
    assert r["kind"] == "department" and best["meets_target"]
    assert {w["workload"] for w in best["workloads"]} == {w.id for w in catalog.load_department(
        "example-academic-centre").workloads}
    # four light workloads fit on one 192 GB MI300X: co-located and still meeting every target
    mi = [o for o in r["options"] if o["gpu"] == "mi300x"]
    assert mi and mi[0]["count"] == 1 and len(mi[0]["co_located"]) == 4
    assert all(w["meets_target"] for w in mi[0]["workloads"])
    assert r["options"][0]["cost_per_1000_studies_usd"] == pytest.approx(
        r["options"][0]["tco_per_year_usd"] / 670_000 * 1000)          # per study of the department


def _not_plannable(pid: str = "stroke-ct-fastpath") -> dict:
    """A preset as written, marked not yet plannable (no shipped preset is any more)."""
    d = catalog.read_yaml(catalog.WORKLOADS_DIR / f"{pid}.yaml")
    return {**d, "plannable": False, "not_plannable_reason": "no 3D model in the catalog"}


def test_department_skips_workloads_that_are_not_plannable_and_says_why(tmp_path):
    d = {"id": "ct-dept", "name": "CT", "workloads": [{"preset": "ct-3d-report-radfm"},
                                                      {"workload": _not_plannable("ct-totalsegmentator-1p5mm")}]}
    path = tmp_path / "ct.yaml"
    path.write_text(json.dumps(d))          # JSON is YAML
    r = plan(str(path), gpus=["l40s"], precisions=["fp8"], max_options=1)
    assert [s["workload"] for s in r["skipped"]] == ["ct-totalsegmentator-1p5mm"]
    assert "3D" in r["skipped"][0]["reason"]
    assert r["feasible"] and [w["workload"] for w in r["options"][0]["workloads"]] == ["ct-3d-report-radfm"]


def test_ct_segmentation_preset_is_plannable_with_ranked_options():
    r = plan("ct-totalsegmentator-1p5mm", gpus=["l40s", "h100-sxm"], precisions=["fp16"], max_options=3)
    assert r["feasible"] and r["options"] and r["recommendation"] is not None


def test_growth_year_in_which_an_option_stops_meeting_the_target():
    r = plan("report-error-check-llama3-70b", gpus=["h100-sxm"], precisions=["fp8"], growth=1.0, years=4,
             max_options=2)
    o = r["options"][0]
    assert o["fails_in_year"] in (1, 2, 3, 4)                # 2x, 4x, 8x, 16x the volume on the same fleet
    assert o["meets_target_through_year"] == o["fails_in_year"] - 1


def test_impossible_target_gives_the_closest_options():
    w = catalog.load_workload("report-error-check-llama3-70b")
    fast = w.model_copy(update={"target": w.target.model_copy(update={"p95_latency_s": 0.5})})
    r = plan(fast, gpus=["h100-sxm", "h200-sxm"], precisions=["fp8"])
    assert not r["feasible"] and r["options"] == [] and r["recommendation"] is None
    assert r["closest"] and "no configuration meets" in r["message"]
    assert "Closest" in r["message"] and "takes" in r["message"]
    assert all(c["floor_s"] > 0.5 for c in r["closest"])


def test_too_few_gpus_allowed_is_reported():
    r = plan("cxr-labeling-14-batch", gpus=["t4"], precisions=["bf16"], max_gpus=1)
    assert not r["feasible"] and "no configuration meets" in r["message"]


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(gpus=["h100"]), UnknownIdError, "unknown GPU id 'h100'"),
    (dict(precisions=["int3"]), UnknownIdError, "unknown precision"),
    (dict(years=0), PlannerError, "years must be a positive integer"),
    (dict(growth=-0.1), PlannerError, "growth must be a number"),
    (dict(pue=0.9), PlannerError, "cost parameter 'pue'"),
    (dict(electricity_usd_per_kwh=float("nan")), PlannerError, "electricity"),
    (dict(discount_rate=0.05), PlannerError, "unknown cost parameter 'discount_rate'"),
])
def test_bad_plan_input_is_one_line(kwargs, exc, match):
    with pytest.raises(exc, match=match) as e:
        plan("impression-summarization", **kwargs)
    assert "\n" not in str(e.value)


def test_not_plannable_workload_and_unknown_target():
    with pytest.raises(PlannerError, match="not yet plannable"):
        plan(Workload(**_not_plannable()))
    with pytest.raises(PlannerError, match="unknown workload preset"):
        plan("error-check")


@pytest.mark.slow
def test_full_plan_over_all_accelerators_under_a_minute():
    t0 = time.perf_counter()
    r = plan("example-academic-centre")
    assert time.perf_counter() - t0 < 60
    assert r["feasible"] and len(r["gpus_considered"]) == len(catalog.list_gpus())
