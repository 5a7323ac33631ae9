"""Compare accelerators: latency, throughput, work per joule and cloud cost per 1,000 studies for one model
and workload across accelerators and precisions, from one vectorised planner.sweep call."""
import streamlit as st

from planner.dashboard import controls, figures, loaders, state, tables
from planner.errors import PlannerError
from planner.quant import PRECISIONS

st.title("Compare accelerators")
st.caption("Predicted by the roofline model (one replica of tp GPUs, full batches, no queueing; engine profile "
           "from the sidebar). Cost uses each spec file's low on-demand cloud price; the Plan page adds "
           "queueing, purchase and power costs.")

c1, c2, c3 = st.columns([1.4, 1.2, 1])
visible = state.visible_gpus()
gpus = state.multiselect("Accelerators", visible, "gpus",
                         ["h100-sxm", "h200-sxm", "a100-sxm-80gb", "l40s", "l4", "mi300x"], container=c1)
precs = state.multiselect("Precisions", list(PRECISIONS), "precisions", ["bf16", "fp8", "w8a8", "w4a16"],
                          container=c1)
model, info, i_len, o_len = controls.model_and_lengths(c2, "llama-3-8b")
batch = controls.batch(c3)
tp = controls.tp(c3)

if not gpus or not precs:
    st.info("Pick at least one accelerator and one precision.")
    st.stop()

fp = state.specs_fingerprint()
try:
    df = loaders.sweep(tuple(gpus), model, tuple(precs), batch, i_len or 1, o_len or 1, tp, state.engine(), fp)
    prices = loaders.cloud_prices(tuple(gpus), fp)
except PlannerError as e:
    st.error(str(e))
    st.stop()
table = tables.compare_table(df, prices, info["category"])
vision = info["category"] == "vision"
units = {"latency_s": "s", "throughput": "images/s" if vision else "output tokens/s",
         "per_joule": "images/J" if vision else "output tokens/J", "usd_per_1000_studies": "USD"}

ok = table[table["status"] == "ok"]
cols = st.columns(4)
for col, (key, label, better_low) in zip(cols, [("latency_s", "Lowest latency", True),
                                                ("throughput", "Highest throughput", False),
                                                ("per_joule", "Most work per joule", False),
                                                ("usd_per_1000_studies", "Cheapest per 1,000 studies", True)]):
    s = ok[key].dropna()
    if s.empty:
        col.metric(label, "–")
        continue
    row = ok.loc[s.idxmin() if better_low else s.idxmax()]
    v = row[key]
    value = f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.3g}"
    value = "$" + value if key.startswith("usd") else value
    col.metric(f"{label} ({units[key]})", value, help=f"{row['gpu']} · {row['precision']}")
    col.caption(f"{row['gpu']} · {row['precision']}")

title = f"{model} · batch {batch} · tp {tp}" + ("" if vision else f" · {i_len} in / {o_len} out tokens") + " (predicted)"
st.plotly_chart(figures.compare_figure(table, units, title), key="cmp_chart")

bad = table[table["status"] != "ok"]
if len(bad):
    st.caption("Not shown: " + "; ".join(f"{r.gpu} {r.precision} ({r.status})" for r in bad.itertuples()))
st.dataframe(table, hide_index=True, key="cmp_table", column_config={
    "latency_s": st.column_config.NumberColumn("latency (s)", format="%.4g"),
    "throughput": st.column_config.NumberColumn(f"throughput ({units['throughput']})", format="%.4g"),
    "studies_per_s": st.column_config.NumberColumn("studies/s", format="%.4g"),
    "per_joule": st.column_config.NumberColumn(units["per_joule"], format="%.4g"),
    "usd_per_gpu_hour": st.column_config.NumberColumn("cloud $/GPU-h", format="%.2f"),
    "usd_per_1000_studies": st.column_config.NumberColumn("$ per 1,000 studies", format="%.4g"),
    "memory_gb_per_gpu": st.column_config.NumberColumn("GB per GPU", format="%.1f"),
    "avg_power_w": st.column_config.NumberColumn("W per GPU", format="%.0f")})
st.download_button("Download CSV", table.to_csv(index=False), file_name=f"compare-{model}.csv", mime="text/csv",
                   key="cmp_csv")
