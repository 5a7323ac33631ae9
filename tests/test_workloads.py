"""Workload presets and department files: every preset of the reference table exists, loads and names its
sources; diurnal profiles by hand; department scaling; and bad files give one-line messages naming the field."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from planner import catalog
from planner.errors import PlannerError, SpecFileError
from planner.workload_specs import Department, Diurnal, Workload, figure_paths, has_source

# reference shared/reference/radiology_workloads.md §6, ids exactly as there
PRESETS = ["ed-cxr-draft-r2gengpt", "hospital-cxr-grounded-maira2", "interactive-vqa-medgemma4b",
           "report-error-check-llama3-70b", "cxr-labeling-14-batch", "impression-summarization",
           "cxr-triage-densenet121", "ct-totalsegmentator-1p5mm", "ct-3d-report-radfm", "stroke-ct-fastpath"]
REFERENCE = catalog.ROOT.parent / "shared" / "reference" / "radiology_workloads.md"


def test_every_reference_preset_has_a_file():
    assert catalog.list_workloads() == sorted(PRESETS)


@pytest.mark.skipif(not REFERENCE.exists(), reason="shared reference not present")
def test_preset_ids_are_those_of_the_reference_table():
    text = REFERENCE.read_text(encoding="utf-8")
    for pid in PRESETS:
        assert f"`{pid}`" in text


@pytest.mark.parametrize("pid", PRESETS)
def test_preset_loads_with_a_source_for_every_figure(pid):
    w = catalog.load_workload(pid)
    assert w.id == pid
    for path in figure_paths(w):
        assert has_source(path, w.sources), path
    assert w.plannable and w.model in catalog.list_models()      # every preset has a catalog model now


@pytest.mark.parametrize("pid, patches", [("ct-totalsegmentator-1p5mm", 5 * 27), ("stroke-ct-fastpath", 1 * 27)])
def test_ct_segmentation_presets_plan_the_gpu_share_in_patches(pid, patches):
    """Reference §3 [D/A]: 27 patches of 128^3 per model, 5 models at 1.5 mm (1 with --fast); the GPU is a
    small part of the measured runtime, which the preset must say."""
    w = catalog.load_workload(pid)
    assert (w.model, w.images_per_study) == ("dynunet-totalseg", patches)
    assert "GPU share only" in w.sources["model"] and "GPU share only" in w.notes


def test_a_workload_marked_not_plannable_needs_a_reason():
    d = catalog.read_yaml(catalog.WORKLOADS_DIR / "stroke-ct-fastpath.yaml")
    assert not Workload(**{**d, "plannable": False, "not_plannable_reason": "no 3D model"}).plannable
    with pytest.raises(ValueError, match="not_plannable_reason"):
        Workload(**{**d, "plannable": False})


def test_preset_values_from_the_reference():
    ec = catalog.load_workload("report-error-check-llama3-70b")
    assert (ec.model, ec.input_tokens, ec.output_tokens, ec.target.p95_latency_s) == ("llama-3-70b", 800, 200, 10)
    assert ec.studies_per_day() == 2700
    assert ec.peak_per_hour() == pytest.approx(2700 * 0.7 / 10)          # 189/h, the preset's 190/h
    ed = catalog.load_workload("ed-cxr-draft-r2gengpt")
    assert (ed.model, ed.images_per_study, ed.output_tokens) == ("r2gengpt", 1.66, 100)
    vqa = catalog.load_workload("interactive-vqa-medgemma4b")
    assert vqa.peak_per_hour() == pytest.approx(120)
    assert (vqa.target.p95_ttft_s, vqa.target.min_tokens_per_s_per_user) == (2, 20)
    batch = catalog.load_workload("cxr-labeling-14-batch")
    assert batch.arrivals.kind == "batch" and batch.arrivals.batch_size == 200_000
    assert catalog.load_workload("ct-3d-report-radfm").model == "radfm"


def test_radfm_approximation_is_in_the_catalog_with_sources():
    m = catalog.load_model("radfm")
    assert m.arch.llm == "llama-2-13b" and m.arch.image_tokens_per_image == 32
    v = catalog.load_model("radfm-vit3d")
    assert (v.arch.image_size // v.arch.patch_size) ** 2 == 16 * 16 * 16      # 512x512x64 in 32x32x4 patches
    assert "APPROXIMATION" in m.notes and "APPROXIMATION" in v.notes


def test_diurnal_profiles_by_hand():
    ed = Diurnal(kind="ed").fractions()
    assert ed.sum() == pytest.approx(1)
    assert ed[0] == pytest.approx(1.5 / 98.8) and ed[20] == pytest.approx(5.6 / 98.8)
    biz = Diurnal(kind="business-hours", share=0.7, start_hour=8, hours=10).fractions()
    assert biz[8:18] == pytest.approx([0.07] * 10) and biz[0] == pytest.approx(0.3 / 14)
    night = Diurnal(kind="business-hours", share=0.5, start_hour=22, hours=4).fractions()
    assert night[[22, 23, 0, 1]] == pytest.approx([0.125] * 4)            # the window wraps past midnight
    assert Diurnal(kind="flat").fractions() == pytest.approx([1 / 24] * 24)
    assert Diurnal(kind="custom", weights=[0] * 12 + [2] * 12).fractions()[12] == pytest.approx(1 / 12)


def test_example_department_scales_by_annual_exams():
    d = catalog.load_department("example-academic-centre")
    assert isinstance(d, Department) and d.annual_exams == 670_000
    by_id = dict(zip((w.id for w in d.workloads), d.scales))
    assert by_id["ed-cxr-draft-r2gengpt"] == pytest.approx(1.0)                    # reference 670,000
    assert by_id["report-error-check-llama3-70b"] == pytest.approx(0.67)           # reference 1,000,000
    ec = next(w for w in d.workloads if w.id == "report-error-check-llama3-70b")
    assert ec.studies_per_day() == pytest.approx(2700 * 0.67)
    path = catalog.DEPARTMENTS_DIR / "example-academic-centre.yaml"
    assert isinstance(catalog.load_workload_or_department(str(path)), Department)
    assert isinstance(catalog.load_workload_or_department("impression-summarization"), Workload)


# --------------------------------------------------------------------------------------------- bad files

def preset_data(pid="impression-summarization") -> dict:
    return yaml.safe_load((catalog.WORKLOADS_DIR / f"{pid}.yaml").read_text())


def write(tmp_path: Path, data: dict, name="w.yaml") -> str:
    p = tmp_path / name
    p.write_text(yaml.safe_dump(data))
    return str(p)


def one_line(e) -> str:
    msg = str(e.value)
    assert "\n" not in msg
    return msg


@pytest.mark.parametrize("edit, expect", [
    (lambda d: d["arrivals"].pop("daily_volume"), ["w.yaml", "daily_volume"]),
    (lambda d: d["arrivals"].update(daily_volume=-5), ["w.yaml", "arrivals.daily_volume", "-5", "greater than 0"]),
    (lambda d: d.update(output_tokens=0), ["output_tokens", "0"]),
    (lambda d: d.update(model="llama-9b"), ["field 'model' = 'llama-9b'", "unknown model id"]),
    (lambda d: d.update(modle="x"), ["modle", "unknown key"]),
    (lambda d: d["sources"].pop("input_tokens"), ["without a 'sources' entry", "input_tokens"]),
    (lambda d: d.pop("input_tokens"), ["input_tokens", "required"]),
    (lambda d: d.update(target={}), ["target", "at least one"]),
    (lambda d: d["arrivals"].update(diurnal={"kind": "business-hours"}), ["share"]),
    (lambda d: d["arrivals"].update(diurnal={"kind": "custom", "weights": [1, 2]}), ["24 values"]),
])
def test_bad_workload_file_is_one_line_naming_field_and_value(tmp_path, edit, expect):
    d = preset_data()
    edit(d)
    with pytest.raises(SpecFileError) as e:
        catalog.load_workload(write(tmp_path, d))
    msg = one_line(e)
    for part in expect:
        assert part in msg


def test_vision_workload_with_llm_fields_is_refused(tmp_path):
    d = preset_data("cxr-triage-densenet121")
    d["input_tokens"] = 100
    d["sources"]["input_tokens"] = "assumption"
    with pytest.raises(SpecFileError, match="'input_tokens' applies to LLMs"):
        catalog.load_workload(write(tmp_path, d))


def test_unknown_preset_and_missing_file(tmp_path):
    with pytest.raises(PlannerError, match="unknown workload preset 'report-error-check'; did you mean"):
        catalog.load_workload("report-error-check")
    with pytest.raises(PlannerError, match="does not exist"):
        catalog.load_workload(str(tmp_path / "none.yaml"))
    (tmp_path / "bad.yaml").write_text("id: [unclosed\n")
    with pytest.raises(SpecFileError, match="bad.yaml: line 2 is not valid YAML"):
        catalog.load_workload(str(tmp_path / "bad.yaml"))


def test_department_entries_and_errors(tmp_path):
    inline = preset_data("impression-summarization")
    inline["id"] = "my-summaries"
    d = {"id": "my-dept", "name": "My department", "annual_exams": 500_000,
         "sources": {"annual_exams": "our PACS, 2025"},
         "workloads": [{"preset": "report-error-check-llama3-70b"}, {"workload": inline, "daily_volume": 100},
                       {"preset": "ed-cxr-draft-r2gengpt", "scale": 2}]}
    dep = catalog.load_department(write(tmp_path, d, "dept.yaml"))
    assert [w.id for w in dep.workloads] == ["report-error-check-llama3-70b", "my-summaries", "ed-cxr-draft-r2gengpt"]
    assert dep.scales == pytest.approx((0.5, 100 / 2700, 2.0))
    assert dep.workloads[1].studies_per_day() == pytest.approx(100)

    bad = dict(d, workloads=[{"preset": "report-error-check-llama3-70b"}, {"preset": "report-error-check-llama3-70b"}])
    with pytest.raises(SpecFileError, match="appears twice"):
        catalog.load_department(write(tmp_path, bad, "dup.yaml"))
    bad = dict(d, workloads=[{"preset": "no-such-preset"}])
    with pytest.raises(SpecFileError, match=r"workloads.0.preset: unknown workload preset 'no-such-preset'"):
        catalog.load_department(write(tmp_path, bad, "unknown.yaml"))
    bad = dict(d, sources={})
    with pytest.raises(SpecFileError, match="annual_exams"):
        catalog.load_department(write(tmp_path, bad, "unsourced.yaml"))
    bad = dict(d, workloads=[{"preset": "cxr-labeling-14-batch"}])
    with pytest.raises(SpecFileError, match="no reference_annual_exams"):
        catalog.load_department(write(tmp_path, bad, "noref.yaml"))
    bad = dict(d, workloads=[{"preset": "ed-cxr-draft-r2gengpt", "workload": inline}])
    with pytest.raises(SpecFileError, match="exactly one of 'preset'"):
        catalog.load_department(write(tmp_path, bad, "both.yaml"))
