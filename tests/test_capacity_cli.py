"""`planner workloads`, `planner plan` and `planner simulate`: every command runs, --json parses with the
issue's keys, --report writes a self-contained HTML report, and bad input exits 2 with one line."""
from __future__ import annotations

import csv
import json

import pytest
import yaml

from planner import catalog
from planner.cli import main


def run(capsys, *args):
    rc = main(list(args))
    out, err = capsys.readouterr()
    return rc, out, err


def test_workloads_table_and_json(capsys):
    rc, out, _ = run(capsys, "workloads")
    assert rc == 0 and "report-error-check-llama3-70b" in out and "ct-totalsegmentator-1p5mm" in out
    assert "not yet plannable" not in out                      # every preset has a catalog model now
    rc, out, _ = run(capsys, "workloads", "--json")
    data = json.loads(out)
    ids = {w["id"] for w in data["workloads"]}
    assert rc == 0 and ids == set(catalog.list_workloads())
    assert all(w["sources"] for w in data["workloads"]) and "example-academic-centre" in data["departments"]
    rc, out, _ = run(capsys, "workloads", "--sources")
    assert rc == 0 and "[S 28]" in out


def test_plan_preset_json_has_the_issue_keys(capsys):
    rc, out, _ = run(capsys, "plan", "--preset", "report-error-check-llama3-70b", "--gpus", "h100-sxm,l40s",
                     "--precisions", "bf16,fp8", "--max-options", "4", "--json")
    r = json.loads(out)
    assert rc == 0 and r["options"]
    for k in ("gpu", "count", "precision", "tp", "p95_latency_s", "meets_target", "tco_per_year_usd",
              "cost_per_1000_studies_usd", "energy_kwh_per_year"):
        assert k in r["options"][0]
    assert r["options"][0]["id"] == r["recommendation"]["id"]


def test_plan_text_output(capsys):
    rc, out, _ = run(capsys, "plan", "--preset", "impression-summarization", "--gpus", "l40s", "--precisions", "fp8",
                     "--max-options", "2")
    assert rc == 0 and "Recommended:" in out and "in-sample" in out


def test_plan_department_writes_report_and_csv(capsys, tmp_path):
    html_path, csv_path = tmp_path / "plan.html", tmp_path / "plan.csv"
    html_path.write_text("old report")                       # replaced atomically
    rc, out, _ = run(capsys, "plan", "--workload", str(catalog.DEPARTMENTS_DIR / "example-academic-centre.yaml"),
                     "--gpus", "mi300x,l40s", "--precisions", "fp8", "--years", "4", "--growth", "0.1",
                     "--max-options", "3", "--report", str(html_path), "--csv", str(csv_path))
    assert rc == 0 and f"wrote {html_path}" in out
    page = html_path.read_text()
    assert page.startswith("<!DOCTYPE html>") and "old report" not in page
    for part in ("Recommendation", "Alternative 1", "Options", "Utilisation", "Cost breakdown", "Sensitivity",
                 "Electricity price", "Assumptions and sources", "in-sample", "published_dev", "[S 28]"):
        assert part in page, part
    assert "<script src=" not in page and page.count("Plotly.newPlot") >= 5    # plotly inlined, charts present
    mdape = catalog.load_calibration().fit_mdape_pct
    assert f"{mdape:.1f} %" in page
    rows = list(csv.DictReader(csv_path.open()))
    assert rows and rows[0]["gpu"] in ("mi300x", "l40s") and float(rows[0]["tco_per_year_usd"]) > 0
    assert not list(tmp_path.glob("*.tmp"))


def test_simulate_json_and_text(capsys):
    args = ("simulate", "--preset", "ed-cxr-draft-r2gengpt", "--gpu", "l40s", "--count", "2", "--precision", "w8a8",
            "--hours", "24")
    rc, out, _ = run(capsys, *args, "--json")
    r = json.loads(out)
    assert rc == 0 and r["replicas"] == 2
    for k in ("p50_latency_s", "p95_latency_s", "p99_latency_s", "p50_ttft_s", "p95_ttft_s", "p99_ttft_s",
              "throughput_studies_per_h", "utilisation", "utilisation_by_hour", "queue_length_by_minute"):
        assert k in r
    rc, out, _ = run(capsys, *args)
    assert rc == 0 and "p95" in out and "meets" in out


def test_impossible_target_exits_3_with_the_closest_options(capsys):
    rc, out, err = run(capsys, "plan", "--preset", "report-error-check-llama3-70b", "--gpus", "h100-sxm,h200-sxm",
                       "--precisions", "fp8", "--p95-target-s", "0.5")
    assert rc == 3 and "no configuration meets" in out and "Closest" in out and "one study alone takes" in out


@pytest.mark.parametrize("args, match", [
    (("plan", "--workload", "missing.yaml"), "does not exist"),
    (("plan", "--preset", "report-error-check", "--gpus", "h100-sxm"), "unknown workload preset"),
    (("plan", "--preset", "impression-summarization", "--gpus", "h100"), "unknown GPU id 'h100'"),
    (("plan", "--preset", "impression-summarization", "--price", "l40s"), "--price expects GPU=NUMBER"),
    (("plan", "--preset", "impression-summarization", "--pue", "0.5"), "cost parameter 'pue'"),
    (("plan", "--preset", "impression-summarization", "--years", "0"), "years"),
    (("plan", "--preset", "impression-summarization", "--report", "/no/such/dir/plan.html", "--gpus", "l40s",
      "--precisions", "fp8"), "does not exist"),
    (("simulate", "--preset", "impression-summarization", "--gpu", "l40s", "--count", "3", "--tp", "2",
      "--precision", "fp8"), "multiple of tp"),
    (("simulate", "--workload", str(catalog.DEPARTMENTS_DIR / "example-academic-centre.yaml"), "--gpu", "l40s",
      "--count", "1"), "not a department"),
])
def test_bad_input_exits_2_with_one_line(capsys, args, match):
    rc, out, err = run(capsys, *args)
    assert rc == 2, (out, err)
    assert match in err and err.count("\n") == 1 and "Traceback" not in err


def test_bad_workload_file_names_field_and_value(capsys, tmp_path):
    d = yaml.safe_load((catalog.WORKLOADS_DIR / "impression-summarization.yaml").read_text())
    d["arrivals"]["daily_volume"] = -3
    p = tmp_path / "mine.yaml"
    p.write_text(yaml.safe_dump(d))
    rc, _, err = run(capsys, "plan", "--workload", str(p))
    assert rc == 2 and "mine.yaml" in err and "arrivals.daily_volume" in err and "-3" in err


def test_plan_of_a_workload_marked_not_plannable_says_why(capsys, tmp_path):
    d = catalog.read_yaml(catalog.WORKLOADS_DIR / "stroke-ct-fastpath.yaml")
    path = tmp_path / "stroke.yaml"
    path.write_text(json.dumps({**d, "plannable": False, "not_plannable_reason": "no 3D model"}))   # JSON is YAML
    rc, out, err = run(capsys, "plan", "--workload", str(path))
    assert rc == 2 and "not yet plannable: no 3D model" in err and err.count("\n") == 1


def test_plan_ct_totalsegmentator_gives_ranked_options(capsys):
    rc, out, _ = run(capsys, "plan", "--preset", "ct-totalsegmentator-1p5mm", "--gpus", "l40s,h100-sxm",
                     "--precisions", "fp16")
    assert rc == 0 and "Recommended:" in out and "option(s) meet ct-totalsegmentator-1p5mm" in out
