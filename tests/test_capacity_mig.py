"""MIG slices in the capacity search (planner.mig): a 1g slice's figures, MIG options in a plan, ranked by
their lower TCO, costed as a share of one GPU, --no-mig / mig=False, and no slice for a model too big for one."""
from __future__ import annotations

import json

import pytest

from planner import catalog
from planner.capacity import plan
from planner.cli import main
from planner.mig import MIG_ASSUMPTION, slice_accelerator

A100 = "a100-sxm-80gb"


@pytest.fixture(scope="module")
def triage():
    return plan("cxr-triage-densenet121", gpus=[A100])


def test_sliced_accelerator_has_a_seventh_of_the_compute_and_an_eighth_of_the_memory():
    acc = catalog.load_gpu(A100)
    s = slice_accelerator(acc)
    assert s.id == "a100-sxm-80gb-mig1g" and s.mig_max_slices is None
    for k, v in acc.peak_dense.model_dump().items():
        if v is not None:
            assert getattr(s.peak_dense, k) == pytest.approx(v / 7)
    assert s.memory.capacity_gb == pytest.approx(10.0)                     # 1g.10gb
    assert s.memory.bandwidth_gb_s == pytest.approx(acc.memory.bandwidth_gb_s / 8)
    assert s.power.tdp_w == pytest.approx(acc.power.tdp_w / 7)
    assert s.price.purchase_usd == pytest.approx(acc.price.purchase_usd / 7)
    assert s.interconnect.max_gpus_per_node == 1                          # no tensor parallelism across slices
    assert s.sources["peak_dense"] == MIG_ASSUMPTION
    assert slice_accelerator(catalog.load_gpu("h200-sxm")).memory.capacity_gb == pytest.approx(141 / 8)  # 1g.18gb
    assert slice_accelerator(catalog.load_gpu("l40s")) is None            # no MIG


def test_mig_option_appears_ranked_by_its_lower_tco_and_meets_the_target(triage):
    opts = triage["options"]
    mig = [o for o in opts if o.get("mig")]
    whole = [o for o in opts if not o.get("mig")]
    assert mig and whole
    m = mig[0]
    assert m["mig"] == "1g" and m["gpu"] == A100 and 1 <= m["slices"] < 7
    assert m["count"] == pytest.approx(m["slices"] / 7) and m["tp"] == 1
    assert m["meets_target"] and m["p95_latency_s"] <= 10
    assert m["tco_per_year_usd"] < min(o["tco_per_year_usd"] for o in whole)
    assert triage["recommendation"]["id"] == opts[0]["id"] and opts[0].get("mig") == "1g"
    tcos = [o["tco_per_year_usd"] for o in opts]
    assert tcos == sorted(tcos)
    # capex is k/7 of one GPU's (purchase plus server share)
    w = next(o for o in whole if o["count"] == 1)
    assert m["capex_usd"] == pytest.approx(w["capex_usd"] * m["slices"] / 7)
    assert m["workloads"][0]["gpu"] == A100 and m["workloads"][0]["slices"] == m["slices"]
    assert any(a["source"] == MIG_ASSUMPTION for a in triage["assumptions"])
    assert "MIG 1g" in triage["message"]
    json.dumps(triage)
    assert not any("mig" in g for g in catalog.list_gpus())              # slices are not left registered


def test_mig_false_removes_mig_options(triage):
    r = plan("cxr-triage-densenet121", gpus=[A100], mig=False)
    assert r["options"] and not any(o.get("mig") for o in r["options"]) and "mig_considered" not in r
    whole = {o["id"]: o["tco_per_year_usd"] for o in triage["options"] if not o.get("mig")}
    assert whole == {o["id"]: o["tco_per_year_usd"] for o in r["options"] if o["id"] in whole}


def test_workload_too_big_for_one_slice_gets_no_mig_option():
    r = plan("report-error-check-llama3-70b", gpus=["h100-sxm"], precisions=["fp8"], max_options=2)
    assert r["mig_considered"] == ["h100-sxm"]
    assert r["options"] and not any(o.get("mig") for o in r["options"])
    assert not any("mig" in c["gpu"] for c in r.get("closest", []))


def test_cli_no_mig_flag(capsys):
    rc = main(["plan", "--preset", "cxr-triage-densenet121", "--gpus", A100, "--max-options", "3"])
    out = capsys.readouterr().out
    assert rc == 0 and "MIG 1g slice(s) of a100-sxm-80gb" in out
    rc = main(["plan", "--preset", "cxr-triage-densenet121", "--gpus", A100, "--no-mig", "--json"])
    r = json.loads(capsys.readouterr().out)
    assert rc == 0 and not any(o.get("mig") for o in r["options"])


def test_options_say_whether_their_family_is_calibrated():
    from planner.capacity import plan
    r = plan("cxr-triage-densenet121", gpus=["l40s", "mi300x"], precisions=["fp16"], mig=False)
    by_gpu = {o["gpu"]: o for o in r["options"]}
    assert by_gpu["l40s"]["efficiency_calibrated"] is True
    assert by_gpu["mi300x"]["efficiency_calibrated"] is False
    assert by_gpu["mi300x"]["efficiency_basis"].startswith("amd-cdna3: assumption")
