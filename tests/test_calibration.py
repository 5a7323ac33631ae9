"""The efficiency file: every family named by a spec has an entry with its basis; fractions are physical."""
from planner import catalog


def test_every_spec_family_has_an_entry():
    cal = catalog.load_calibration()
    missing = {a.family for a in catalog.accelerators().values()} - set(cal.families)
    assert not missing


def test_fractions_physical_and_bases_stated():
    cal = catalog.load_calibration()
    for name, e in cal.engines.items():
        for f in ("gemm_compute_frac", "conv_compute_frac", "attn_compute_frac", "mem_frac", "link_frac"):
            assert 0.1 <= getattr(e, f) <= 1.0, (name, f)
        assert e.launch_overhead_s < 50e-6 and e.step_overhead_s < 10e-3
    # an eager engine is never faster per kernel than an optimizing one
    assert cal.engines["eager"].launch_overhead_s >= cal.engines["optimized"].launch_overhead_s
    assert all(f.basis for f in cal.families.values()) and all(p.basis for p in cal.precisions.values())


def test_fitted_parameters_exist():
    d = catalog.load_calibration().model_dump()
    for path in catalog.load_calibration().fitted_parameters:
        node = d
        for k in path.split("."):
            node = node[k]
        assert isinstance(node, float)
