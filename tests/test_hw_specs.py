"""The shipped accelerator specs in hw_specs/: they load, carry the hand-checked figures, and the schema
rejects the mistakes it exists to catch (missing source, unknown key, negative bandwidth, sparse headlines)."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from planner import catalog
from planner.errors import SpecFileError

HW_DIR = Path(__file__).resolve().parent.parent / "hw_specs"

EXPECTED_IDS = {
    "h100-sxm", "a100-sxm-40gb", "a100-sxm-80gb", "a100-pcie-80gb", "h100-pcie", "h100-nvl", "h200-sxm", "b200",
    "gh200", "l40s", "l4", "t4", "a10", "v100-sxm2-32gb", "v100-sxm2-16gb", "rtx-6000-ada", "rtx-4090", "rtx-3090",
    "mi250x", "mi300x", "mi325x", "gaudi2", "gaudi3", "jetson-agx-orin", "xeon-8480-2s", "epyc-9654-2s",
}


@pytest.fixture(scope="module")
def accs():
    return catalog.accelerators()


def _h100_dict() -> dict:
    return yaml.safe_load((HW_DIR / "h100-sxm.yaml").read_text(encoding="utf-8"))


# ------------------------------------------------------------------------------------------ the shipped files

def test_every_file_loads_and_stem_is_id(accs):
    files = sorted(HW_DIR.glob("*.y*ml"))
    assert len(files) >= 26
    for f in files:
        assert f.stem in accs, f"{f.name} did not load"
        assert accs[f.stem].id == f.stem


def test_all_expected_ids_present(accs):
    assert len(EXPECTED_IDS) == 26
    missing = EXPECTED_IDS - set(accs)
    assert not missing, f"missing specs: {sorted(missing)}"
    assert len(catalog.list_gpus()) >= 26


def test_h100_sxm_bf16_dense(accs):
    assert accs["h100-sxm"].peak_dense.flops("bf16") == pytest.approx(989.5e12)


def test_a100_has_no_fp8_and_dense_312(accs):
    a = accs["a100-sxm-80gb"]
    assert a.peak_dense.flops("fp8") is None
    assert a.peak_dense.flops("bf16") == pytest.approx(312e12)
    assert "fp8" not in a.peak_dense.available()


def test_l4_bf16_is_half_the_sparse_headline(accs):
    assert accs["l4"].peak_dense.flops("bf16") == pytest.approx(121e12)
    assert accs["l4"].peak_dense.flops("bf16") == pytest.approx(242e12 / 2)


def test_h200_memory(accs):
    h = accs["h200-sxm"]
    assert h.memory.capacity_gb == 141
    assert h.memory_bytes == pytest.approx(141 * 2**30)   # capacities are binary (see Accelerator.memory_bytes)
    assert h.bandwidth_bytes_s == pytest.approx(4.8e12)


def test_mi300x_peer_vs_all_to_all(accs):
    ic = accs["mi300x"].interconnect
    assert ic.topology == "point-to-point"
    assert ic.per_peer_gb_s_per_direction == 64
    assert ic.all_to_all_gb_s_per_direction == 448
    assert ic.per_peer_gb_s_per_direction < ic.all_to_all_gb_s_per_direction / 5


# Sparse (2:4) headline figures in TFLOPS that must never appear as a dense peak.
SPARSE_HEADLINES = {
    "h100-sxm": {"bf16": 1979, "fp16": 1979},
    "h200-sxm": {"bf16": 1979, "fp16": 1979},
    "gh200": {"bf16": 1979, "fp16": 1979},
    "l4": {"bf16": 242, "fp16": 242},
    "b200": {"bf16": 4500, "fp16": 4500},
    "a100-sxm-80gb": {"bf16": 624, "fp16": 624},
    "l40s": {"bf16": 733, "fp16": 733},
    "mi300x": {"bf16": 2614.9, "fp16": 2614.9},
}


@pytest.mark.parametrize("acc_id", sorted(SPARSE_HEADLINES))
def test_no_sparse_headline_as_dense(accs, acc_id):
    for dtype, sparse in SPARSE_HEADLINES[acc_id].items():
        got = accs[acc_id].peak_dense.flops(dtype)
        assert got is not None
        assert got != pytest.approx(sparse * 1e12, rel=0.01), f"{acc_id} {dtype} is the sparse headline"
        # NVIDIA rounds its pairs (L40S prints 362 | 733*), hence 2 %
        assert got == pytest.approx(sparse * 1e12 / 2, rel=0.02), f"{acc_id} {dtype} should be sparse / 2"


def test_no_spec_uses_any_known_sparse_headline(accs):
    sparse_values = {1979e12, 242e12, 4500e12}
    for a in accs.values():
        for dtype in ("bf16", "fp16"):
            v = a.peak_dense.flops(dtype)
            if v is not None:
                assert all(v != pytest.approx(s, rel=0.005) for s in sparse_values), f"{a.id} {dtype} = {v}"


def test_absent_precisions_are_absent_not_zero(accs):
    for a in accs.values():
        for k, v in a.peak_dense.model_dump().items():
            assert v is None or v > 0, f"{a.id} {k} = {v}"
    assert accs["t4"].peak_dense.flops("bf16") is None          # Turing has no BF16
    assert accs["v100-sxm2-32gb"].peak_dense.flops("tf32") is None
    assert accs["h100-sxm"].peak_dense.flops("int4") is None      # Hopper has no INT4 tensor path
    assert accs["gaudi2"].peak_dense.flops("fp16") is None        # NP: not published


def test_links_and_topologies(accs):
    for a in accs.values():
        ic = a.interconnect
        if ic.topology == "none":
            assert ic.all_to_all_gb_s_per_direction is None and ic.per_peer_gb_s_per_direction is None, a.id
        else:
            assert ic.per_peer_gb_s_per_direction <= ic.all_to_all_gb_s_per_direction, a.id
    assert accs["h100-sxm"].interconnect.all_to_all_gb_s_per_direction == 450   # not the 900 bidir
    assert accs["b200"].interconnect.all_to_all_gb_s_per_direction == 900       # not the 1,800 bidir
    for pair in ("a100-pcie-80gb", "h100-pcie", "h100-nvl"):
        assert accs[pair].interconnect.topology == "bridge-pairs"
        assert accs[pair].interconnect.max_gpus_per_node == 2
    assert accs["v100-sxm2-32gb"].interconnect.topology == "mesh"


def test_idle_power_is_a_labelled_assumption(accs):
    for a in accs.values():
        assert a.sources["power.idle_w"].startswith("assumption:"), a.id
        assert 0 < a.power.idle_w < a.power.tdp_w


def test_recalled_figures_say_so(accs):
    for acc_id in ("rtx-4090", "rtx-3090"):
        src = accs[acc_id].sources["peak_dense"]
        assert "not consulted in this session" in src and "verify" in src
        assert accs[acc_id].price.purchase_usd is None and accs[acc_id].price.cloud_usd_per_gpu_hour is None


def test_kinds_and_mig(accs):
    assert accs["gaudi3"].kind == "accelerator"
    assert accs["jetson-agx-orin"].kind == "edge"
    assert accs["xeon-8480-2s"].kind == "cpu" and accs["epyc-9654-2s"].kind == "cpu"
    assert accs["mi300x"].mig_max_slices is None            # CPX partitions are not MIG
    assert accs["h100-sxm"].mig_max_slices == 7


# ------------------------------------------------------------------------------------------ schema rejections

def test_h100_dict_parses():
    acc = catalog.parse_accelerator(_h100_dict(), "h100-sxm.yaml")
    assert acc.id == "h100-sxm"


def test_figure_without_source_is_rejected():
    d = _h100_dict()
    del d["sources"]["power.idle_w"]
    with pytest.raises(SpecFileError, match=r"power\.idle_w"):
        catalog.parse_accelerator(d, "x.yaml")


def test_block_figure_without_source_is_rejected():
    d = _h100_dict()
    del d["sources"]["memory"]
    with pytest.raises(SpecFileError) as e:
        catalog.parse_accelerator(d, "x.yaml")
    assert "memory.bandwidth_gb_s" in str(e.value) or "memory.capacity_gb" in str(e.value)
    assert str(e.value).startswith("x.yaml")


def test_blank_source_does_not_count():
    d = _h100_dict()
    d["sources"]["launch_year"] = "   "
    with pytest.raises(SpecFileError, match="launch_year"):
        catalog.parse_accelerator(d, "x.yaml")


def test_unknown_key_is_rejected():
    d = _h100_dict()
    d["memory"]["bandwith_gb_s"] = 3350          # typo
    with pytest.raises(SpecFileError) as e:
        catalog.parse_accelerator(d, "x.yaml")
    assert "bandwith_gb_s" in str(e.value)
    assert "unknown key" in str(e.value)


def test_unknown_top_level_key_is_rejected():
    d = _h100_dict()
    d["tflops_sparse"] = 1979
    with pytest.raises(SpecFileError, match="tflops_sparse"):
        catalog.parse_accelerator(d, "x.yaml")


def test_negative_bandwidth_is_rejected():
    d = _h100_dict()
    d["memory"]["bandwidth_gb_s"] = -3350
    with pytest.raises(SpecFileError, match=r"memory\.bandwidth_gb_s"):
        catalog.parse_accelerator(d, "x.yaml")


def test_zero_peak_is_rejected():
    d = _h100_dict()
    d["peak_dense"]["fp8_tflops"] = 0            # absent precisions must be left out, not zero
    with pytest.raises(SpecFileError, match=r"peak_dense\.fp8_tflops"):
        catalog.parse_accelerator(d, "x.yaml")


def test_stem_must_equal_id():
    d = copy.deepcopy(_h100_dict())
    with pytest.raises(SpecFileError, match="stem"):
        catalog.parse_accelerator(d, "h200-sxm.yaml")
