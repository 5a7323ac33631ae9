"""Energy and cost (planner.cost): hand-computed TCO, cloud and break-even, overrides, sources, bad input."""
from __future__ import annotations

import pytest

from planner import catalog
from planner.cost import (PARAMETERS, CostParams, assumptions, cost_params, fleet_costs, purchase_price,
                          tco_at_electricity)
from planner.errors import PlannerError


def test_fleet_costs_by_hand_two_h100():
    acc = catalog.load_gpu("h100-sxm")            # $30,000, 700 W TDP, $2.69/GPU-h (hw_specs)
    c = fleet_costs(acc, 2, gpu_kwh_per_year=1000.0, studies_per_year=100_000, params=CostParams())
    capex = 2 * (30_000 + 7_500)                   # GPUs + server share
    host_kwh = 0.35 * 700 * 2 * 8760 / 1000        # 4,292.4 kWh: CPUs, fans, NICs around the clock
    facility_kwh = (1000 + host_kwh) * 1.6         # PUE
    energy_usd = facility_kwh * 0.13
    tco = capex / 4 + 0.10 * capex + energy_usd    # 18,750 + 7,500 + 1,100.82
    assert c["capex_usd"] == capex == 75_000
    assert c["host_energy_kwh_per_year"] == pytest.approx(4292.4)
    assert c["energy_kwh_per_year"] == pytest.approx(8467.84)
    assert c["energy_cost_per_year_usd"] == pytest.approx(1100.8192)
    assert c["tco_per_year_usd"] == pytest.approx(tco) == pytest.approx(27_350.8192)
    assert c["cost_per_1000_studies_usd"] == pytest.approx(273.508192)
    assert c["energy_wh_per_study"] == pytest.approx(84.6784)
    od = 2.69 * 2 * 8760                           # 47,128.8 a year on demand
    assert c["cloud_on_demand_per_year_usd"] == pytest.approx(od)
    assert c["cloud_reserved_per_year_usd"] == pytest.approx(od * 0.7)
    # buying pays off when capex + opex * m/12 = cloud * m/12
    assert c["break_even_months_vs_on_demand"] == pytest.approx(12 * 75_000 / (od - 7_500 - 1100.8192))
    assert c["break_even_months_vs_reserved"] == pytest.approx(12 * 75_000 / (0.7 * od - 7_500 - 1100.8192))


def test_every_price_is_editable():
    acc = catalog.load_gpu("h100-sxm")
    p = cost_params(electricity_usd_per_kwh=0.20, pue=1.2, amortisation_years=5, maintenance_frac_per_year=0.2,
                    server_usd_per_gpu=0, host_power_frac_of_tdp=0, reserved_discount=0.5,
                    gpu_prices_usd={"h100-sxm": 25_000}, cloud_usd_per_gpu_hour={"h100-sxm": 2.0})
    c = fleet_costs(acc, 1, 1000.0, 1000, p)
    assert c["tco_per_year_usd"] == pytest.approx(25_000 / 5 + 0.2 * 25_000 + 1000 * 1.2 * 0.20)
    assert c["cloud_reserved_per_year_usd"] == pytest.approx(2.0 * 8760 * 0.5)
    assert c["price_basis"] == "user override"


def test_missing_purchase_price_leaves_tco_empty_and_says_how_to_fix():
    acc = catalog.load_gpu("a10")
    assert acc.price.purchase_usd is None
    c = fleet_costs(acc, 1, 500.0, 1000, CostParams())
    assert c["tco_per_year_usd"] is None and c["cost_per_1000_studies_usd"] is None
    assert "--price a10=USD" in c["price_basis"]
    assert c["cloud_on_demand_per_year_usd"] == pytest.approx(acc.price.cloud_usd_per_gpu_hour * 8760)
    c = fleet_costs(acc, 1, 500.0, 1000, cost_params(gpu_prices_usd={"a10": 3000}))
    assert c["capex_usd"] == 3000 + 7500


def test_cpu_server_price_is_the_whole_server():
    acc = catalog.load_gpu("xeon-8480-2s")
    price, _ = purchase_price(acc, CostParams())
    assert fleet_costs(acc, 1, 0.0, 1, CostParams())["capex_usd"] == price


def test_no_break_even_when_renting_is_cheaper_than_running():
    acc = catalog.load_gpu("l40s")
    c = fleet_costs(acc, 1, 1000.0, 1000, cost_params(cloud_usd_per_gpu_hour={"l40s": 0.01}))
    assert c["break_even_months_vs_on_demand"] is None


def test_tco_is_linear_in_the_electricity_price():
    acc = catalog.load_gpu("mi300x")
    base = fleet_costs(acc, 4, 20_000.0, 1e6, CostParams())
    hi = fleet_costs(acc, 4, 20_000.0, 1e6, cost_params(electricity_usd_per_kwh=0.30))
    assert tco_at_electricity(base, 0.30) == pytest.approx(hi["tco_per_year_usd"])
    assert tco_at_electricity(base, 0.13) == pytest.approx(base["tco_per_year_usd"])


def test_every_default_has_a_source_or_is_marked_an_assumption():
    rows = assumptions(CostParams())
    assert {r["name"] for r in rows} == set(PARAMETERS)
    for r in rows:
        assert r["source"].strip() and r["unit"].strip()
        assert "assumption" in r["source"] or "derived" in r["source"] or "[S" in r["source"]
    changed = {r["name"]: r for r in assumptions(cost_params(pue=1.3))}
    assert changed["pue"]["value"] == 1.3 and changed["pue"]["source"].startswith("user input")


@pytest.mark.parametrize("kwargs, match", [
    (dict(pue=0.5), "pue"),
    (dict(electricity_usd_per_kwh=-1), "electricity_usd_per_kwh"),
    (dict(amortisation_years=0), "amortisation_years"),
    (dict(reserved_discount=1.0), "reserved_discount"),
    (dict(gpu_prices_usd={"h100-sxm": "cheap"}), "gpu_prices_usd"),
    (dict(pue_ratio=1.5), "unknown cost parameter 'pue_ratio'"),
])
def test_bad_cost_input_names_the_parameter(kwargs, match):
    with pytest.raises(PlannerError, match=match):
        cost_params(**kwargs)
