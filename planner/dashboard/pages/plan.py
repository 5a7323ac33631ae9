"""Plan: capacity planning for a radiology department. A preset workload or an uploaded department file,
adjusted volume, targets, growth and prices -> ranked hardware options from planner.capacity.plan (serving
simulation and TCO), the Pareto chart of cost against p95 latency, utilisation over the day, the cost
breakdown, and the HTML report and CSV to download."""
import hashlib
import json

import pandas as pd
import streamlit as st

from planner.dashboard import figures, loaders, state, tables, upload
from planner.errors import PlannerError
from planner.quant import PRECISIONS

st.title("Plan capacity")
st.caption("Which accelerators, how many, at which precision, to serve a department's studies within its "
           "latency targets, and what that costs a year. p95 latencies come from a simulated day of arrivals "
           "served at the predicted service times (roofline model); costs from the prices and assumptions "
           "listed below. The engine profile is the sidebar's.")

HOW = ("Capacity planning is built by issue 4 (`planner plan --preset ...`, module `planner/capacity.py`, presets "
       "in `data/workloads/`). Until it lands, the Compare accelerators page gives per-configuration latency and "
       "cost.")
try:
    loaders.optional("planner.capacity", "plan")
    presets = loaders.workloads()
except loaders.Missing as e:
    st.info(f"Capacity planning is not there yet: {e}. {HOW}")
    st.stop()

DEFAULT_GPUS = ["h100-sxm", "h200-sxm", "a100-sxm-80gb", "l40s", "l4", "mi300x"]
DEFAULT_PRESET = "report-error-check-llama3-70b"
OWN_WIDGETS = {"electricity_usd_per_kwh", "pue", "seed", "growth", "planning_years", "years"}

with st.form("plan_form"):
    c1, c2, c3 = st.columns([1.3, 1.3, 1])
    source = state.select("Workload", ["preset", "department file"], "source", "preset", container=c1,
                          widget="radio", horizontal=True)
    preset = state.select("Preset", presets, "preset", DEFAULT_PRESET, container=c1) if presets else None
    c1.file_uploader("Department YAML (used when 'department file' is chosen)", type=["yaml", "yml"],
                     key="plan_upload", help="Several workloads sharing one fleet; see data/departments/ for an "
                                             f"example. Limit {upload.MAX_UPLOAD_BYTES // 1024} KiB.")
    gpus = state.multiselect("Accelerators to consider", state.visible_gpus(), "gpus", DEFAULT_GPUS, container=c2,
                             help="Fewer accelerators plan faster; empty = all of them (up to a minute).")
    precs = state.multiselect("Precisions to consider", list(PRECISIONS), "precisions", ["bf16", "fp8", "w8a8"],
                              container=c2, help="empty = the planner's default set")
    years = state.number("Planning horizon (years)", "years", 4, min_value=1, max_value=30, container=c3)
    growth = state.flt("Volume growth per year", "growth", 0.05, min_value=0.0, max_value=1.0, step=0.01,
                       container=c3, format="%.2f")
    elec = state.flt("Electricity (USD/kWh)", "elec", 0.13, min_value=0.0, max_value=5.0, step=0.01,
                     container=c3, format="%.3f")
    pue = state.flt("PUE (facility overhead)", "pue", 1.6, min_value=1.0, max_value=4.0, step=0.05,
                    container=c3, format="%.2f")
    fields_box = st.container()
    price_box = st.expander("Prices and cost assumptions (edit the value column, then press Plan)")
    st.form_submit_button("Plan", type="primary")

# -------------------------------------------------------------------------- the workload and its edits
workload, dept_key = None, ""
if source == "department file":
    f = st.session_state.get("plan_upload")
    if f is None:
        st.info("Upload a department YAML file (several workloads sharing one fleet), then press Plan.")
        st.stop()
    try:
        workload = upload.parse_department_upload(f.getvalue(), f.name)
    except PlannerError as e:
        st.error(f"Department file not accepted: {e}")
        st.stop()
    dept_key = hashlib.sha1(f.getvalue()).hexdigest()
    base = workload
else:
    try:
        base = loaders.load_workload(preset)
    except (PlannerError, loaders.Missing) as e:
        st.error(str(e))
        st.stop()

edits = {}
fields = loaders.editable_fields(base)
with fields_box:
    if fields:
        st.markdown("**Volume, tokens and targets** of the workload (change, then press Plan)")
        cols = st.columns(min(4, len(fields)))
        for k, (name, value) in enumerate(fields.items()):
            label, col = name.split(".")[-1].replace("_", " "), cols[k % len(cols)]
            wkey = f"plan_field_{dept_key or preset}_{name}"
            if isinstance(value, int):
                new = state.number(label, f"w.{name}", value, min_value=1, max_value=10**9, container=col,
                                   key=wkey, help=f"workload field `{name}`")
            else:
                new = state.flt(label, f"w.{name}", float(value), min_value=0.0, max_value=1e9,
                                step=max(abs(float(value)) / 10, 0.01), container=col, key=wkey, format="%g",
                                help=f"workload field `{name}`")
            if new != value:
                edits[name] = new
    elif dept_key:
        st.caption("A department's volumes come from its file (annual_exams, scale, daily_volume per entry).")

prev = st.session_state.get("plan_prices_base")
overrides = {}
with price_box:
    if prev is None:
        st.caption("The plan's prices and cost assumptions appear here after the first plan.")
    else:
        edited = st.data_editor(prev, key="plan_prices", hide_index=True, disabled=["name", "unit", "source"],
                                column_config={"value": st.column_config.NumberColumn("value", format="%g")})
        for orig, row in zip(prev.itertuples(), edited.itertuples()):
            if pd.notna(row.value) and float(row.value) != float(orig.value):
                overrides[str(row.name)] = float(row.value)

# -------------------------------------------------------------------------- plan (cached per arguments)
args = dict(source=preset or "", department_key=dept_key, gpus=tuple(gpus) or None, precisions=tuple(precs) or None,
            years=years, growth=growth, electricity=elec, pue=pue, seed=0, edits=tuple(sorted(edits.items())),
            overrides=tuple(sorted(overrides.items())), engine=state.engine(), fp=state.specs_fingerprint())
try:
    plan = loaders.capacity_plan(**args, _workload=workload if dept_key else None)
except PlannerError as e:
    st.error(f"No plan: {e}")
    st.stop()
except TypeError as e:
    if "keyword argument" in str(e):
        st.error(f"The planner did not accept these settings ({e}); undo the edited assumptions.")
    else:
        st.error(f"The capacity planner failed: TypeError: {e}")
    st.stop()
key = hashlib.sha1(repr(sorted(args.items())).encode()).hexdigest()

a = tables.assumptions_frame(plan)
if prev is None and not a.empty and {"name", "value"} <= set(a.columns):
    names = loaders.cost_parameter_names()
    num = a[a["value"].map(lambda v: isinstance(v, (int, float)) and not isinstance(v, bool))]
    num = num[~num["name"].isin(OWN_WIDGETS) & ~num["name"].str.contains(r"[.\[]")]
    if names is not None:
        num = num[num["name"].isin(names)]
    if len(num):
        st.session_state["plan_prices_base"] = num[[c for c in ("name", "value", "unit", "source") if c in num]] \
            .assign(value=num["value"].astype(float)).reset_index(drop=True)
        st.rerun()    # show the editable prices at once

if plan.get("message"):
    st.caption(plan["message"])
opts = tables.options_frame(plan)
if opts.empty:
    st.warning("No configuration meets every target." + (f" {plan['message']}" if plan.get("message") else ""))
else:
    rec = opts[opts["recommended"]]
    best = rec.iloc[0] if len(rec) else opts.iloc[0]
    meets = bool(best.get("meets_target", True))

    def usd(v, fmt=",.0f"):            # options without a purchase price have no TCO: say so, do not crash
        return "no price" if v is None or pd.isna(v) else f"${v:{fmt}}"
    (st.success if meets else st.warning)(
        f"{'Recommended' if meets else 'Closest (misses the target)'}: **{best['option']}** · "
        f"p95 {best['p95_latency_s']:.3g} s · TCO {usd(best['tco_per_year_usd'])} per year · "
        f"{usd(best['cost_per_1000_studies_usd'], '.3g')} per 1,000 studies · "
        f"{best['energy_kwh_per_year']:,.0f} kWh per year")
    m = st.columns(4)
    m[0].metric("Accelerators", (f"{best['slices']:g} x MIG {best['mig']} slice(s) of {best['gpu']}"
                                if isinstance(best.get("mig"), str) else f"{best['count']} x {best['gpu']}"),
                help=f"precision {best['precision']}, tp {best['tp']}")
    m[1].metric("p95 latency (simulated)", f"{best['p95_latency_s']:.3g} s")
    m[2].metric("TCO per year", usd(best["tco_per_year_usd"]))
    m[3].metric("Per 1,000 studies", usd(best["cost_per_1000_studies_usd"], ".3g"))
closest = plan.get("closest")
if closest and (opts.empty or not opts.get("meets_target", pd.Series([True])).astype(bool).any()):
    st.markdown("**Closest options and what they achieve**")
    st.dataframe(pd.DataFrame(closest if isinstance(closest, list) else [closest]), hide_index=True,
                 key="plan_closest")

if not opts.empty:
    st.subheader("Options, best first")
    st.dataframe(tables.options_display(opts), hide_index=True, key="plan_options", column_config={
        "p95_latency_s": st.column_config.NumberColumn("p95 (s)", format="%.3g"),
        "tco_per_year_usd": st.column_config.NumberColumn("TCO $/year", format="%,.0f"),
        "cost_per_1000_studies_usd": st.column_config.NumberColumn("$ / 1,000 studies", format="%.3g"),
        "energy_kwh_per_year": st.column_config.NumberColumn("kWh / year", format="%,.0f")})
    left, right = st.columns(2)
    left.plotly_chart(figures.pareto_figure(opts, "tco_per_year_usd", "TCO per year against p95 latency"),
                      key="plan_pareto")
    items = tables.cost_breakdown(plan["options"][int(best["rank"]) - 1])
    right.plotly_chart(figures.cost_breakdown_figure(items, f"Cost per year: {best['option']}"), key="plan_cost")
    util = tables.utilisation_frame(plan, list(opts["option"]))
    if not util.empty:
        names = list(dict.fromkeys(util["option"]))
        default = list(dict.fromkeys([n for n in [best["option"]] + names if n in names]))[:3]
        shown = st.multiselect("Options on the utilisation chart", names, default=default, key="plan_util_opts")
        st.plotly_chart(figures.utilisation_figure(util[util["option"].isin(shown)],
                                                   "Utilisation over the simulated day"), key="plan_util")

val = plan.get("validation")
if isinstance(val, dict) and val.get("basis"):
    mdape = val.get("fit_mdape_pct")
    st.caption((f"Model error: MdAPE {mdape:g} %, " if isinstance(mdape, (int, float)) else "Model error: ")
               + str(val["basis"]))
if not a.empty:
    with st.expander("All assumptions and their sources"):
        st.dataframe(a.astype({"value": str}) if "value" in a else a, hide_index=True, key="plan_assumptions_table")

st.subheader("Download")
d1, d2, d3 = st.columns(3)
if not opts.empty:
    d1.download_button("Options (CSV)", tables.options_display(opts).to_csv(index=False), file_name="plan-options.csv",
                       mime="text/csv", key="plan_csv")
d2.download_button("Plan (JSON)", json.dumps(plan, indent=1, default=str), file_name="plan.json",
                   mime="application/json", key="plan_json")
try:
    loaders.optional("planner.report", "plan_report_html")
except loaders.Missing as e:
    d3.info(f"The HTML report is not there yet: {e} (issue 4, `planner plan --report plan.html`).")
else:
    def report() -> str:
        """Built when the button is pressed (it embeds plotly.js, a few MB), not on every rerun."""
        try:
            return loaders.report_html(key, plan)
        except Exception as e:   # the download then says what failed instead of breaking the page
            return f"<!doctype html><p>radplan: the report could not be built: {type(e).__name__}: {e}</p>"
    d3.download_button("Procurement report (HTML)", report, file_name="plan-report.html", mime="text/html",
                       key="plan_html")
