"""Energy and cost of a fleet (pure): capital cost, amortisation, maintenance, electricity with PUE, cloud
rental on demand and reserved, total cost of ownership per year and per 1,000 studies, break-even.

Defaults come from shared/reference/radiology_workloads.md §5; each carries its source or the word
"assumption" in PARAMETERS, and every one can be overridden. Money is US dollars of the price dates in
hw_specs (no inflation or cost of capital: straight-line amortisation).
"""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from planner.errors import PlannerError
from planner.units import HOUR, YEAR

HOURS_PER_YEAR = YEAR / HOUR          # 8,760: an always-on fleet


class CostParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    electricity_usd_per_kwh: float = Field(0.13, ge=0, le=5)
    pue: float = Field(1.6, ge=1, le=4)
    amortisation_years: float = Field(4, gt=0, le=20)
    maintenance_frac_per_year: float = Field(0.10, ge=0, le=1)
    server_usd_per_gpu: float = Field(7500, ge=0)
    host_power_frac_of_tdp: float = Field(0.35, ge=0, le=5)
    reserved_discount: float = Field(0.30, ge=0, lt=1)
    gpu_prices_usd: dict[str, float] = {}              # purchase price per accelerator id (overrides hw_specs)
    cloud_usd_per_gpu_hour: dict[str, float] = {}      # cloud on-demand price per accelerator id


# name -> (unit, source). The report prints these next to the values used.
PARAMETERS = {
    "electricity_usd_per_kwh": ("USD/kWh", "assumption: planner default US $0.13/kWh (reference §5); US commercial "
                                "10.2-20.6 ¢/kWh by state, national median ~11.5-11.9 ¢ (EIA 2024 [S 36]); EU "
                                "non-household ~€0.20/kWh (Eurostat [S 37])"),
    "pue": ("ratio", "assumption: 1.6 for a hospital server room (reference §5); industry average 1.58 (2023) and "
            "1.56 (2024), Uptime Institute [S 35]"),
    "amortisation_years": ("years", "assumption: 4 years for GPU servers (reference §5; sensitivity 3-6); "
                           "hyperscalers use 5-6 years [S 38]"),
    "maintenance_frac_per_year": ("fraction of capex per year", "assumption: hardware support ~10 % of the "
                                  "purchase price a year; NVIDIA DGX support is quoted at ~20 %/yr of the base "
                                  "price (one blog source [S 39]): use 0.2 for DGX-class support"),
    "server_usd_per_gpu": ("USD per GPU", "derived: an 8x H100 node at ~$300k (reference §5, range $200-450k "
                           "[S 39][A]) minus 8 x $30k GPUs (hw_specs h100-sxm) = $60k of server per 8 GPUs = "
                           "$7,500 per GPU slot; not added to CPU servers, whose price is the whole server"),
    "host_power_frac_of_tdp": ("fraction of GPU TDP", "assumption derived from S 40: DGX H100 draws 6.5-8.5 kW "
                               "typical with 8 x 700 W GPUs, so CPUs, memory, fans and NICs add ~(7.5 - 5.6) / 5.6 "
                               "= 0.34 of the GPUs' TDP; drawn around the clock"),
    "reserved_discount": ("fraction", "assumption: a 1-year cloud commitment ~30 % below on-demand (not in the "
                          "reference; spot is 50-65 % off [S 41]); check your provider's offer"),
    "cloud_hours_per_year": ("hours", "assumption: an always-on fleet, 8,760 h a year (PHI stays on a dedicated "
                             "deployment; reference §5 planner default: no cloud bursting for PHI)"),
}


def cost_params(**overrides) -> CostParams:
    """CostParams with overrides; a bad value raises PlannerError naming the parameter."""
    try:
        return CostParams(**overrides)
    except ValidationError as e:
        err = e.errors()[0]
        name = ".".join(str(x) for x in err["loc"]) or "?"
        if err["type"] == "extra_forbidden":
            known = ", ".join(CostParams.model_fields)
            raise PlannerError(f"unknown cost parameter '{name}'; known: {known}") from None
        raise PlannerError(f"cost parameter '{name}' = {err.get('input')!r}: {err['msg']}") from None


def purchase_price(acc, params: CostParams) -> tuple[float | None, str]:
    """Purchase price of one accelerator (USD) and where it comes from."""
    if acc.id in params.gpu_prices_usd:
        return params.gpu_prices_usd[acc.id], "user override"
    if acc.price.purchase_usd is not None:
        src = acc.sources.get("price.purchase_usd") or acc.price.purchase_basis or "see file"
        return acc.price.purchase_usd, f"hw_specs/{acc.id}.yaml price.purchase_usd ({src})"
    return None, f"hw_specs/{acc.id}.yaml has no price.purchase_usd; give one with --price {acc.id}=USD"


def cloud_price(acc, params: CostParams) -> tuple[float | None, str]:
    if acc.id in params.cloud_usd_per_gpu_hour:
        return params.cloud_usd_per_gpu_hour[acc.id], "user override"
    p = acc.price.cloud_usd_per_gpu_hour
    if p is None:
        return None, f"hw_specs/{acc.id}.yaml has no cloud price"
    when = acc.price.cloud_price_date or "undated"
    return p, f"hw_specs/{acc.id}.yaml price.cloud_usd_per_gpu_hour ({acc.price.cloud_provider or 'market'}, {when})"


def server_share(acc, params: CostParams) -> float:
    return 0.0 if acc.kind == "cpu" else params.server_usd_per_gpu


def fleet_costs(acc, count: int, gpu_kwh_per_year: float, studies_per_year: float, params: CostParams) -> dict:
    """Yearly cost of ``count`` accelerators that draw ``gpu_kwh_per_year`` (board energy from the simulated
    utilisation and the power model) while serving ``studies_per_year`` studies."""
    price, price_src = purchase_price(acc, params)
    cloud, cloud_src = cloud_price(acc, params)
    host_kwh = params.host_power_frac_of_tdp * acc.power.tdp_w * count * HOURS_PER_YEAR / 1000
    it_kwh = gpu_kwh_per_year + host_kwh
    facility_kwh = it_kwh * params.pue
    energy_usd = facility_kwh * params.electricity_usd_per_kwh
    out = {"purchase_usd_per_gpu": price, "price_basis": price_src, "cloud_usd_per_gpu_hour": cloud,
           "cloud_price_basis": cloud_src, "gpu_energy_kwh_per_year": gpu_kwh_per_year,
           "host_energy_kwh_per_year": host_kwh, "it_energy_kwh_per_year": it_kwh,
           "energy_kwh_per_year": facility_kwh, "energy_cost_per_year_usd": energy_usd,
           "energy_wh_per_study": facility_kwh * 1000 / studies_per_year if studies_per_year else None}
    capex = None if price is None else count * (price + server_share(acc, params))
    tco = None
    if capex is not None:
        maint = params.maintenance_frac_per_year * capex
        tco = capex / params.amortisation_years + maint + energy_usd
        out.update(capex_usd=capex, capex_per_year_usd=capex / params.amortisation_years,
                   maintenance_per_year_usd=maint)
    else:
        out.update(capex_usd=None, capex_per_year_usd=None, maintenance_per_year_usd=None)
    out["tco_per_year_usd"] = tco
    out["cost_per_1000_studies_usd"] = tco / studies_per_year * 1000 if tco is not None and studies_per_year else None
    out.update(cloud_costs(cloud, count, capex, out.get("maintenance_per_year_usd"), energy_usd, studies_per_year,
                           params))
    return out


def cloud_costs(cloud_usd_h, count, capex, maint_per_year, energy_per_year, studies_per_year, params) -> dict:
    """Renting the same GPUs around the clock, and the month in which buying becomes cheaper than renting:
    capex + opex * m / 12 = cloud * m / 12  ->  m = 12 capex / (cloud - opex); never if cloud <= opex."""
    if cloud_usd_h is None:
        return {"cloud_on_demand_per_year_usd": None, "cloud_reserved_per_year_usd": None,
                "break_even_months_vs_on_demand": None, "break_even_months_vs_reserved": None,
                "cloud_cost_per_1000_studies_usd": None}
    od = cloud_usd_h * count * HOURS_PER_YEAR
    rs = od * (1 - params.reserved_discount)
    out = {"cloud_on_demand_per_year_usd": od, "cloud_reserved_per_year_usd": rs,
           "cloud_cost_per_1000_studies_usd": rs / studies_per_year * 1000 if studies_per_year else None}
    opex = (maint_per_year or 0.0) + energy_per_year
    for key, cloud in (("break_even_months_vs_on_demand", od), ("break_even_months_vs_reserved", rs)):
        out[key] = 12 * capex / (cloud - opex) if capex is not None and cloud > opex else None
    return out


def tco_at_electricity(costs: dict, usd_per_kwh: float) -> float | None:
    """TCO per year of an option at another electricity price (for the sensitivity table)."""
    if costs.get("tco_per_year_usd") is None:
        return None
    return costs["capex_per_year_usd"] + costs["maintenance_per_year_usd"] + costs["energy_kwh_per_year"] * usd_per_kwh


def assumptions(params: CostParams) -> list[dict]:
    """The cost inputs used, each with unit and source (or 'assumption: ...')."""
    rows = []
    for name, (unit, src) in PARAMETERS.items():
        value = HOURS_PER_YEAR if name == "cloud_hours_per_year" else getattr(params, name)
        default = CostParams.model_fields[name].default if name in CostParams.model_fields else value
        rows.append({"name": name, "value": value, "unit": unit,
                     "source": src if value == default else f"user input (default {default}: {src})"})
    for gid, v in params.gpu_prices_usd.items():
        rows.append({"name": f"purchase_usd[{gid}]", "value": v, "unit": "USD per GPU", "source": "user input"})
    for gid, v in params.cloud_usd_per_gpu_hour.items():
        rows.append({"name": f"cloud_usd_per_gpu_hour[{gid}]", "value": v, "unit": "USD/GPU-h", "source": "user input"})
    return rows
