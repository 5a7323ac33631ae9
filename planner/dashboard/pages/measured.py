"""Measured vs predicted: every measured run under data/measurements/, per op (scatter against y = x with
error bands) and end to end, with the error table. Needs planner.validate's measured-run functions (issue 3)."""
from pathlib import Path

import streamlit as st

from planner import catalog
from planner.dashboard import figures, loaders, state, tables
from planner.errors import PlannerError

st.title("Measured vs predicted")
st.caption("Measured: profiled runs of our torch models on real hardware (data/measurements/). Predicted: the "
           "roofline model for the same configuration. Rows join on op name and phase.")

HOW = ("Measured runs are made by the measurement part (issue 3): `planner measure --model llama-2-7b "
       "--precision bf16,w8a8 --batch 1,16 --layers 2 --device cuda --out data/measurements/` writes them, "
       "`planner validate data/measurements/<run>` compares them.")
try:
    runs = loaders.measured_runs()
except loaders.Missing as e:
    st.info(f"Measured runs are not there yet: {e}. {HOW}")
    st.stop()
if not runs:
    st.info(f"No measured runs in `data/measurements/` yet. {HOW}")
    st.stop()


def short(p: str) -> str:
    try:
        return str(Path(p).resolve().relative_to(catalog.ROOT))
    except ValueError:
        return p


results = {}
for r in runs:
    try:
        results[r] = loaders.validated_run(r)
    except (PlannerError, loaders.Missing, OSError, ValueError, KeyError) as e:
        results[r] = f"cannot validate: {e}"

summary = tables.runs_summary(results)
summary["run"] = summary["run"].map(short)
st.subheader(f"All measured runs ({len(runs)})")
st.dataframe(summary, hide_index=True, key="mv_summary", column_config={
    "op_mdape_pct": st.column_config.NumberColumn("per-op MdAPE (%)", format="%.1f"),
    "e2e_worst_abs_pct_error": st.column_config.NumberColumn("worst end-to-end error (%)", format="%.1f")})

labels = {short(r): r for r in runs}
choice = state.select("Run", list(labels), "run", next(iter(labels)))
v = results[labels[choice]]
if not isinstance(v, dict):
    st.error(v)
    st.stop()

rows, e2e, sp = tables.measured_rows(v), tables.e2e_errors(v), tables.speedups(v)
m1, m2, m3 = st.columns(3)
m1.metric("Device", str(v.get("device", "?")))
m2.metric("Model · precision", f"{v.get('model', '?')} · {v.get('precision', '?')}")
mdape = v.get("op_mdape_pct")
m3.metric("Per-op MdAPE", f"{mdape:.1f} %" if isinstance(mdape, (int, float)) else "–")
ds = v.get("device_state")
if v.get("scaled_to_device_state") and ds:
    st.caption(f"Predicted from the device profile of {v.get('profile_date', '?')} scaled to the device state the run "
               f"probed (compute x{ds['compute']:.2f}, memory x{ds['memory']:.2f}); `planner validate --as-measured` "
               "predicts from the profile as measured.")
else:
    st.caption(f"Predicted from the device profile of {v.get('profile_date', '?')} as measured.")
for key in ("profile_unsteady", "profile_drift"):
    if v.get(key):
        st.warning(v[key])

left, right = st.columns([2, 1])
left.plotly_chart(figures.measured_scatter_figure(rows, f"Per-op time: predicted against measured ({choice})"),
                  key="mv_scatter")
right.plotly_chart(figures.e2e_error_figure(e2e, "End-to-end error per phase"), key="mv_e2e")
if len(sp):
    st.markdown("**Speed-ups** (measured against predicted)")
    st.dataframe(sp, hide_index=True, key="mv_speedups")
st.markdown("**Per-op errors**")
if rows.empty:
    st.info("This run has no per-op rows.")
else:
    show = rows.copy()
    show["abs_error_pct"] = show["error_pct"].abs()
    st.dataframe(show.sort_values("abs_error_pct", ascending=False), hide_index=True, key="mv_rows",
                 column_config={"predicted_s": st.column_config.NumberColumn("predicted (s)", format="%.4g"),
                                "measured_s": st.column_config.NumberColumn("measured (s)", format="%.4g"),
                                "error_pct": st.column_config.NumberColumn("error (%)", format="%+.1f"),
                                "abs_error_pct": st.column_config.NumberColumn("|error| (%)", format="%.1f")})
