"""Quantization: memory and predicted speed-up of each precision on one accelerator, and the SmoothQuant
accuracy study (alpha x activation granularity) with the activation outliers before and after smoothing."""
import streamlit as st

import planner
from planner.dashboard import controls, figures, loaders, state, tables
from planner.errors import PlannerError
from planner.quant import PRECISIONS

st.title("Quantization")
st.caption("Memory and speed-ups are predictions of the roofline model with each precision's own fitted "
           "kernel efficiency (quantized kernels rarely reach the ideal 2x). The SmoothQuant study below is "
           "measured on a real model.")

c1, c2, c3 = st.columns([1, 1.2, 1])
gpu = state.select("Accelerator", state.visible_gpus(), "gpu", "h100-sxm", container=c1)
baseline = state.select("Baseline precision", ["bf16", "fp16", "fp32"], "baseline", "bf16", container=c1)
model, info, i_len, o_len = controls.model_and_lengths(c2, "llama-3-8b")
batch = controls.batch(c3)
tp = controls.tp(c3)

fp = state.specs_fingerprint()
try:
    results = loaders.estimates_by_precision(gpu, model, tuple(PRECISIONS), batch, i_len, o_len, tp,
                                             state.engine(), fp)
except PlannerError as e:
    st.error(str(e))
    st.stop()
table = tables.quant_table(results, baseline)
if not isinstance(results.get(baseline), dict):
    st.warning(f"The baseline {baseline} does not run here ({results.get(baseline)}); pick another baseline.")

cap_gb = planner.load_gpu(gpu).memory.capacity_gb
left, right = st.columns(2)
left.plotly_chart(figures.quant_memory_figure(table, cap_gb, f"Memory per GPU: {model} on {tp} x {gpu}, batch {batch}"),
                  key="q_mem")
runs = table[table["status"] == "ok"]
right.plotly_chart(figures.quant_speedup_figure(runs, baseline, f"Predicted speed-up over {baseline}"),
                   key="q_speed")
left_out = table[table["status"] != "ok"]
if len(left_out):
    st.caption("Not on the speed-up chart: " + "; ".join(f"{r.precision} ({r.status})" for r in left_out.itertuples())
               + ". Raise tp or lower the batch to fit.")
show = table.drop(columns=[c for c in ("reserve_gb",) if c in table])
st.dataframe(show, hide_index=True, key="q_table", column_config={
    c: st.column_config.NumberColumn(c, format="%.3g") for c in show.columns if c not in ("precision", "status")})

st.subheader("SmoothQuant accuracy study (measured)")
try:
    study = loaders.smoothquant_study()
except loaders.Missing as e:
    st.info(f"The SmoothQuant study is not there yet: {e}. It is produced by the measurement part (issue 3) with "
            "`planner smoothquant --alpha 0,0.25,0.5,0.75,1 --granularity per-token,per-tensor-dynamic,"
            "per-tensor-static`, which writes `data/measurements/smoothquant/study.json`.")
    st.stop()
except PlannerError as e:
    st.error(str(e))
    st.stop()
rows, outs = tables.study_rows(study), tables.study_outliers(study)
meta = {k: v for k, v in study.items() if k not in ("rows", "outliers") and isinstance(v, (str, int, float))}
if meta:
    st.caption(" · ".join(f"{k}: {v}" for k, v in meta.items()))
if rows.empty:
    st.info("The study file has no rows yet.")
else:
    st.plotly_chart(figures.smoothquant_figure(rows, "W8A8 accuracy against alpha and activation granularity"),
                    key="q_sq")
    st.dataframe(rows, hide_index=True, key="q_sq_table")
if outs.empty:
    st.info("The study file has no per-channel outlier statistics.")
else:
    layers = list(dict.fromkeys(outs["layer"]))
    layer = st.selectbox("Layer", layers, key="q_layer") if len(layers) > 1 else layers[0]
    part = outs[outs["layer"] == layer]
    st.plotly_chart(figures.outliers_figure(part, f"Per-channel activation max before and after smoothing {layer}".strip()),
                    key="q_outliers")
