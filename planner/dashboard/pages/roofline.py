"""Roofline explorer: each op of prefill and decode (and vision) at its arithmetic intensity and predicted
achieved FLOP/s under each accelerator's roof; how the picture moves with batch size; the per-op table."""
import pandas as pd
import streamlit as st

from planner.dashboard import controls, figures, loaders, state, tables
from planner.errors import PlannerError

st.title("Roofline explorer")
st.caption("Predicted by the roofline model: each op's time combines its compute time at the fitted achievable "
           "fraction of its dtype's dense peak and its memory time at the fitted fraction of DRAM bandwidth. "
           "The roof lines are datasheet peaks; decode rows are one step at the mean context.")

c1, c2, c3, c4 = st.columns([1.3, 1.2, 1, 1])
gpus = state.multiselect("Accelerators", state.visible_gpus(), "gpus", ["h100-sxm", "l40s"], container=c1,
                         max_selections=4)
model, info, i_len, o_len = controls.model_and_lengths(c2)
prec = controls.precision(c3)
tp = controls.tp(c3)
batch = controls.batch(c4)
engine, fp = state.engine(), state.specs_fingerprint()

if not gpus:
    st.info("Pick at least one accelerator.")
    st.stop()

frames, roofs, errors = [], [], []
for g in gpus:
    try:
        frame, r = loaders.roofline(g, model, prec, batch, i_len, o_len, tp, engine, fp), loaders.roof(g, prec, fp)
    except PlannerError as e:
        errors.append(str(e))
        continue
    frames.append(frame)
    roofs.append(r)
for e in errors:
    st.error(e)
if not frames:
    st.stop()
ops = pd.concat(frames, ignore_index=True)
points = tables.op_points(ops)

first = ops[ops["gpu"] == ops["gpu"].iloc[0]]
cols = st.columns(4)
phases = [p for p in ("vision", "prefill", "decode") if p in set(first["phase"])]
for col, phase in zip(cols, phases):
    part = first[first["phase"] == phase]
    label = {"vision": "Vision encode", "prefill": "Prefill (TTFT part)", "decode": "Decode step"}[phase]
    col.metric(f"{label} · {first['gpu'].iloc[0]}", f"{part['time_s'].sum() * 1e3:.4g} ms",
               help="predicted; decode: one step at the mean context")
ridge = roofs[0]["ridge"]
cols[len(phases)].metric(f"Ridge point · {roofs[0]['gpu']}", f"{ridge:.0f} FLOP/byte",
               help=f"{roofs[0]['dtype']} dense peak / DRAM bandwidth (datasheet)")

summary = []
for g, t in ops.groupby("gpu", sort=False):
    row = {"accelerator": g}
    for ph, part in t.groupby("phase", sort=False):
        tot = part["time_s"].sum()
        by = part.groupby("bound")["time_s"].sum()
        row[f"{ph} time (ms)"] = tot * 1e3
        row[f"{ph} bound"] = f"{by.idxmax()} ({by.max() / tot:.0%} of time)"
    summary.append(row)
st.dataframe(pd.DataFrame(summary), hide_index=True, key="rf_summary")

title = f"{model} · {prec} · batch {batch} · tp {tp}: ops on the roofline (predicted)"
st.plotly_chart(figures.roofline_figure(points, roofs, title), key="rf_chart")
hidden = len(ops) - len(points)
if hidden:
    st.caption(f"{hidden} ops without FLOPs or bytes (embedding lookups, fused elementwise ops) are in the table "
               "but cannot sit on a log-log chart.")

st.subheader("How it moves with batch size")
traj = {}
for b in sorted(set(loaders.TRAJECTORY_BATCHES) | {batch}):
    try:
        traj[b] = pd.concat([loaders.roofline(r["gpu"], model, prec, b, i_len, o_len, tp, engine, fp)
                             for r in roofs], ignore_index=True)
    except PlannerError:      # e.g. a batch beyond what the model allows; the chart shows the others
        continue
ph = tables.phase_points(traj)
st.plotly_chart(figures.batch_trajectory_figure(ph, roofs, "Whole-phase intensity and rate, batch 1 to 256 "
                                                "(predicted)"), key="rf_batch_chart")
st.caption("Decode weights are read once per step whatever the batch, so decode intensity grows roughly with "
           "batch until it meets the ridge; prefill is compute-bound from the first token.")

st.subheader("Per-op table")
show = ops[["gpu", "phase", "name", "group", "count", "flops", "bytes", "intensity", "bound", "time_s"]].copy()
show["time_ms"] = show.pop("time_s") * 1e3
show["share_of_phase"] = show["time_ms"] / show.groupby(["gpu", "phase"])["time_ms"].transform("sum")
st.dataframe(show, hide_index=True, key="rf_table", column_config={
    "flops": st.column_config.NumberColumn("FLOPs", format="%.3e"),
    "bytes": st.column_config.NumberColumn("bytes", format="%.3e"),
    "intensity": st.column_config.NumberColumn("FLOP/byte", format="%.3g"),
    "time_ms": st.column_config.NumberColumn("time (ms)", format="%.4g"),
    "share_of_phase": st.column_config.ProgressColumn("share of phase", format="percent", min_value=0, max_value=1)})
