"""Pure figure builders: tidy DataFrames (planner.dashboard.tables) -> plotly Figures. No streamlit, no I/O,
no modelling; every figure says in its title or axis what is predicted and what is measured."""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

PHASE_COLORS = {"vision": "#2ca02c", "prefill": "#1f77b4", "decode": "#d62728"}
SYMBOLS = ["circle", "diamond", "square", "triangle-up", "x", "star", "cross", "pentagon"]
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf"]
TERA = 1e12


def _layout(fig: go.Figure, title: str, height: int = 460) -> go.Figure:
    # No template here: Streamlit applies its theme, and a template costs a deep copy (~0.1 s) per figure.
    fig.update_layout(title=dict(text=title, x=0, xanchor="left", font=dict(size=15)), height=height,
                      margin=dict(l=60, r=20, t=60, b=50), legend=dict(orientation="h", y=-0.18))
    return fig


def empty_figure(message: str) -> go.Figure:
    fig = go.Figure()
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return _layout(fig, "", 240)


def _roof_traces(fig: go.Figure, roofs: list[dict], x_range: tuple[float, float]) -> None:
    """Datasheet roof per accelerator: min(peak, bandwidth x intensity), with the ridge point marked."""
    xs = np.logspace(np.log10(x_range[0]), np.log10(x_range[1]), 200)
    for k, r in enumerate(roofs):
        peak, bw = r["peak_flops"], r["bandwidth_bytes_s"]
        ys = np.minimum(peak, bw * xs) / TERA
        dash = ["solid", "dash", "dot", "dashdot"][k % 4]
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line=dict(color="#444", dash=dash, width=2),
                                 name=f"{r['gpu']} roof ({r['dtype']} peak, DRAM)", hoverinfo="skip"))
        ridge = peak / bw
        fig.add_trace(go.Scatter(x=[ridge], y=[peak / TERA], mode="markers+text", name=f"{r['gpu']} ridge",
                                 marker=dict(symbol="triangle-down", size=11, color="#444"),
                                 text=[f"ridge {ridge:.0f}"], textposition="top center", showlegend=False,
                                 hovertemplate=f"{r['gpu']} ridge point: {ridge:.0f} FLOP/byte<extra></extra>"))


def _range(values: pd.Series, roofs: list[dict]) -> tuple[float, float]:
    v = [float(x) for x in values if np.isfinite(x) and x > 0] + [r["peak_flops"] / r["bandwidth_bytes_s"] for r in roofs]
    if not v:
        return 0.1, 1e4
    return min(v) / 3, max(v) * 3


def roofline_figure(ops: pd.DataFrame, roofs: list[dict], title: str) -> go.Figure:
    """Log-log roofline: x arithmetic intensity (FLOP/byte), y FLOP/s (TFLOP/s). Each op of each phase at its
    intensity and predicted achieved rate (FLOPs / predicted op time); colour = phase, symbol = accelerator.
    ``ops``: op_points() rows with gpu, phase, name, intensity, flops_per_s, time_s, bound."""
    fig = go.Figure()
    _roof_traces(fig, roofs, _range(ops["intensity"] if len(ops) else pd.Series(dtype=float), roofs))
    gpus = list(dict.fromkeys(ops["gpu"])) if len(ops) else []
    for (gpu, phase), part in ops.groupby(["gpu", "phase"], sort=False) if len(ops) else []:
        sym = SYMBOLS[gpus.index(gpu) % len(SYMBOLS)]
        custom = np.stack([part["name"], part["bound"], part["time_s"] * 1e3, part["flops"], part["bytes"]], axis=1)
        fig.add_trace(go.Scatter(
            x=part["intensity"], y=part["flops_per_s"] / TERA, mode="markers", name=f"{phase} ops · {gpu}",
            marker=dict(color=PHASE_COLORS.get(phase, "#555"), symbol=sym, size=10, line=dict(width=1, color="white")),
            customdata=custom,
            hovertemplate=("<b>%{customdata[0]}</b> (" + phase + ", " + gpu + ")<br>intensity %{x:.3g} FLOP/byte"
                           "<br>achieved %{y:.3g} TFLOP/s<br>%{customdata[1]}-bound, %{customdata[2]:.3g} ms"
                           "<br>FLOPs %{customdata[3]:.3g}, bytes %{customdata[4]:.3g}<extra></extra>")))
    fig.update_xaxes(type="log", title="arithmetic intensity (FLOP / byte)")
    fig.update_yaxes(type="log", title="TFLOP/s (roof: datasheet; dots: predicted achieved)")
    return _layout(fig, title, 520)


def batch_trajectory_figure(points: pd.DataFrame, roofs: list[dict], title: str) -> go.Figure:
    """Each phase as one point per batch size (whole-phase intensity and achieved rate), joined in batch order."""
    fig = go.Figure()
    _roof_traces(fig, roofs, _range(points["intensity"] if len(points) else pd.Series(dtype=float), roofs))
    gpus = list(dict.fromkeys(points["gpu"])) if len(points) else []
    for (gpu, phase), part in points.groupby(["gpu", "phase"], sort=False) if len(points) else []:
        part = part.sort_values("batch")
        fig.add_trace(go.Scatter(
            x=part["intensity"], y=part["flops_per_s"] / TERA, mode="lines+markers+text", name=f"{phase} · {gpu}",
            text=[f"b{b}" for b in part["batch"]], textposition="top left",
            line=dict(color=PHASE_COLORS.get(phase, "#555"), dash="solid" if gpus.index(gpu) == 0 else "dot"),
            marker=dict(symbol=SYMBOLS[gpus.index(gpu) % len(SYMBOLS)], size=8),
            customdata=np.stack([part["batch"], part["time_s"] * 1e3, part["memory_bound_share"] * 100], axis=1),
            hovertemplate=(phase + " · " + gpu + ", batch %{customdata[0]}<br>intensity %{x:.3g} FLOP/byte<br>"
                           "%{y:.3g} TFLOP/s, %{customdata[1]:.3g} ms<br>memory-bound share of time "
                           "%{customdata[2]:.0f} %<extra></extra>")))
    fig.update_xaxes(type="log", title="whole-phase arithmetic intensity (FLOP / byte)")
    fig.update_yaxes(type="log", title="TFLOP/s (predicted)")
    return _layout(fig, title, 460)


COMPARE_METRICS = [("latency_s", "latency per batch (s)", False),
                   ("throughput", "throughput (per s, one replica)", False),
                   ("per_joule", "work per joule", False),
                   ("usd_per_1000_studies", "cloud $ per 1,000 studies", False)]


def compare_figure(table: pd.DataFrame, units: dict[str, str], title: str) -> go.Figure:
    """Four panels (latency, throughput, per-joule, $/1,000 studies): x accelerator, one bar per precision."""
    names = [f"{label} [{units.get(k, '')}]" if units.get(k) else label for k, label, _ in COMPARE_METRICS]
    fig = make_subplots(rows=2, cols=2, subplot_titles=names, vertical_spacing=0.16, horizontal_spacing=0.08)
    precisions = list(dict.fromkeys(table["precision"])) if len(table) else []
    for j, (key, _, _) in enumerate(COMPARE_METRICS):
        r, c = divmod(j, 2)
        for k, p in enumerate(precisions):
            part = table[table["precision"] == p]
            fig.add_trace(go.Bar(x=part["gpu"], y=part[key], name=p, legendgroup=p, showlegend=j == 0,
                                 marker_color=PALETTE[k % len(PALETTE)],
                                 hovertemplate="%{x} · " + p + "<br>%{y:.4g}<extra></extra>"), row=r + 1, col=c + 1)
    fig.update_layout(barmode="group")
    fig.update_yaxes(type="log", row=1, col=1)
    return _layout(fig, title, 640)


def quant_memory_figure(table: pd.DataFrame, capacity_gb: float, title: str) -> go.Figure:
    """Stacked memory per GPU (weights, KV cache, activations, runtime reserve) per precision."""
    ok = table[table.get("weights_gb").notna()] if "weights_gb" in table else table.iloc[0:0]
    fig = go.Figure()
    for key, name, color in (("weights_gb", "weights", "#1f77b4"), ("kv_cache_gb", "KV cache", "#ff7f0e"),
                             ("activations_gb", "activations", "#2ca02c"), ("reserve_gb", "runtime reserve", "#c7c7c7")):
        if key in ok:
            fig.add_trace(go.Bar(x=ok["precision"], y=ok[key], name=name, marker_color=color,
                                 hovertemplate="%{x}: %{y:.2f} GB<extra>" + name + "</extra>"))
    fig.add_hline(y=capacity_gb, line_dash="dash", line_color="#d62728",
                  annotation_text=f"GPU memory {capacity_gb:g} GB", annotation_position="top left")
    fig.update_layout(barmode="stack")
    fig.update_yaxes(title="GB per GPU (predicted)")
    return _layout(fig, title, 420)


def quant_speedup_figure(table: pd.DataFrame, baseline: str, title: str) -> go.Figure:
    """Predicted speed-up over the baseline precision, per phase metric (TTFT, TPOT, end to end)."""
    fig = go.Figure()
    labels = {"speedup_ttft": "TTFT (prefill)", "speedup_tpot": "TPOT (decode step)", "speedup_e2e": "end to end",
              "speedup_latency": "latency"}
    for k, (col, name) in enumerate(labels.items()):
        if col in table and table[col].notna().any():
            fig.add_trace(go.Bar(x=table["precision"], y=table[col], name=name, marker_color=PALETTE[k],
                                 hovertemplate="%{x}: %{y:.2f}x<extra>" + name + "</extra>"))
    fig.add_hline(y=1.0, line_dash="dot", line_color="#444", annotation_text=f"{baseline} = 1.0")
    fig.update_layout(barmode="group")
    fig.update_yaxes(title=f"predicted speed-up over {baseline} (x)")
    return _layout(fig, title, 420)


def smoothquant_figure(rows: pd.DataFrame, title: str) -> go.Figure:
    """Mean and minimum cosine similarity to fp32 against alpha, one line per activation granularity."""
    fig = go.Figure()
    for k, (g, part) in enumerate(rows.groupby("granularity", sort=False) if len(rows) else []):
        col = PALETTE[k % len(PALETTE)]
        fig.add_trace(go.Scatter(x=part["alpha"], y=part["mean_cosine"], mode="lines+markers", name=f"{g} mean",
                                 line=dict(color=col)))
        if "min_cosine" in part:
            fig.add_trace(go.Scatter(x=part["alpha"], y=part["min_cosine"], mode="lines+markers", name=f"{g} min",
                                     line=dict(color=col, dash="dot"), marker=dict(symbol="x")))
    fig.update_xaxes(title="smoothing strength alpha (0 = no smoothing)")
    fig.update_yaxes(title="cosine similarity to fp32 (measured)")
    return _layout(fig, title, 420)


def outliers_figure(out: pd.DataFrame, title: str) -> go.Figure:
    """Per-channel activation |max| before and after smoothing (log y): outlier channels flatten."""
    fig = go.Figure()
    for stage, color in (("before smoothing", "#d62728"), ("after smoothing", "#1f77b4")):
        part = out[out["stage"] == stage]
        if len(part):
            fig.add_trace(go.Bar(x=part["channel"], y=part["max_abs"], name=stage, marker_color=color, opacity=0.75))
    fig.update_layout(barmode="overlay", bargap=0)
    fig.update_xaxes(title="activation channel")
    fig.update_yaxes(type="log", title="max |activation| (measured)")
    return _layout(fig, title, 400)


def measured_scatter_figure(rows: pd.DataFrame, title: str, bands=(10, 25)) -> go.Figure:
    """Predicted against measured op time (log-log), the y = x line and +-band % error bands."""
    fig = go.Figure()
    v = pd.concat([rows["predicted_s"], rows["measured_s"]]) if len(rows) else pd.Series([1e-6, 1e-3])
    v = v[(v > 0) & np.isfinite(v)]
    lo, hi = (float(v.min()) / 2, float(v.max()) * 2) if len(v) else (1e-6, 1e-3)
    xs = np.array([lo, hi]) * 1e3
    for b, fill in zip(sorted(bands, reverse=True), ("rgba(31,119,180,0.08)", "rgba(31,119,180,0.16)")):
        fig.add_trace(go.Scatter(x=np.r_[xs, xs[::-1]], y=np.r_[xs * (1 + b / 100), xs[::-1] * (1 - b / 100)],
                                 fill="toself", fillcolor=fill, line=dict(width=0), name=f"±{b} %", hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=xs, y=xs, mode="lines", line=dict(color="#444", dash="dash"), name="y = x",
                             hoverinfo="skip"))
    for phase, part in rows.groupby("phase", sort=False) if len(rows) else []:
        fig.add_trace(go.Scatter(
            x=part["measured_s"] * 1e3, y=part["predicted_s"] * 1e3, mode="markers", name=str(phase),
            marker=dict(color=PHASE_COLORS.get(phase, "#555"), size=9), customdata=np.stack(
                [part["name"], part["error_pct"]], axis=1),
            hovertemplate="<b>%{customdata[0]}</b><br>measured %{x:.3g} ms<br>predicted %{y:.3g} ms<br>"
                          "error %{customdata[1]:+.1f} %<extra>" + str(phase) + "</extra>"))
    fig.update_xaxes(type="log", title="measured op time (ms)")
    fig.update_yaxes(type="log", title="predicted op time (ms)")
    return _layout(fig, title, 480)


def e2e_error_figure(e2e: pd.DataFrame, title: str) -> go.Figure:
    fig = go.Figure(go.Bar(x=e2e["phase"], y=e2e["abs_pct_error"], marker_color="#9467bd",
                           hovertemplate="%{x}: %{y:.1f} %<extra></extra>"))
    fig.update_yaxes(title="end-to-end |predicted - measured| / measured (%)")
    return _layout(fig, title, 320)


def pareto_figure(options: pd.DataFrame, cost_col: str, title: str) -> go.Figure:
    """Options as cost against p95 latency; the Pareto set joined by a line, the recommendation starred."""
    fig = go.Figure()
    if options.empty:
        return empty_figure("no options")
    meets = options.get("meets_target", pd.Series(True, index=options.index)).astype(bool)
    for ok, name, color in ((True, "meets target", "#2ca02c"), (False, "misses target", "#bbbbbb")):
        part = options[meets == ok]
        if len(part):
            fig.add_trace(go.Scatter(x=part["p95_latency_s"], y=part[cost_col], mode="markers", name=name,
                                     marker=dict(color=color, size=10), text=part["option"],
                                     hovertemplate="%{text}<br>p95 %{x:.3g} s<br>%{y:,.0f}<extra></extra>"))
    # The planner's Pareto set may span more criteria than the two axes (energy too), so it is ringed, not joined.
    par = options[options.get("on_pareto", False) == True]  # noqa: E712
    if len(par):
        fig.add_trace(go.Scatter(x=par["p95_latency_s"], y=par[cost_col], mode="markers", name="Pareto set",
                                 marker=dict(symbol="circle-open", size=17, color="#1f77b4", line=dict(width=2)),
                                 text=par["option"], hovertemplate="%{text}<extra>Pareto set</extra>"))
    rec = options[options.get("recommended", False) == True]  # noqa: E712
    if len(rec):
        fig.add_trace(go.Scatter(x=rec["p95_latency_s"], y=rec[cost_col], mode="markers", name="recommended",
                                 marker=dict(symbol="star", size=18, color="#ff7f0e", line=dict(width=1, color="#333")),
                                 text=rec["option"], hovertemplate="%{text}<extra>recommended</extra>"))
    fig.update_xaxes(type="log", title="p95 latency (s, simulated)")
    labels = {"tco_per_year_usd": "TCO per year (USD)", "cost_per_1000_studies_usd": "USD per 1,000 studies"}
    fig.update_yaxes(title=labels.get(cost_col, cost_col.replace("_", " ")))
    return _layout(fig, title, 440)


def utilisation_figure(util: pd.DataFrame, title: str) -> go.Figure:
    fig = go.Figure()
    for k, (opt, part) in enumerate(util.groupby("option", sort=False) if len(util) else []):
        part = part.sort_values("hour")
        fig.add_trace(go.Scatter(x=part["hour"], y=part["utilisation"] * 100, mode="lines+markers", name=str(opt),
                                 line=dict(color=PALETTE[k % len(PALETTE)], shape="hv")))
    fig.update_xaxes(title="hour of day", dtick=2, range=[-0.5, 23.5])
    fig.update_yaxes(title="GPU utilisation (%, simulated)", range=[0, 105])
    return _layout(fig, title, 360)


def cost_breakdown_figure(items: pd.DataFrame, title: str) -> go.Figure:
    """Stacked yearly cost items of the on-premise TCO, beside the cloud alternatives where given."""
    if items.empty:
        return empty_figure("no cost breakdown in this plan")
    fig = go.Figure()
    for k, (item, part) in enumerate(items.groupby("item", sort=False)):
        fig.add_trace(go.Bar(x=part["usd_per_year"], y=part["bar"], orientation="h", name=item,
                             marker_color=PALETTE[k % len(PALETTE)],
                             hovertemplate="%{y}: " + item + " $%{x:,.0f} per year<extra></extra>"))
    fig.update_xaxes(title="USD per year")
    _layout(fig, title, 340)
    fig.update_layout(barmode="stack", legend=dict(orientation="v", y=1, x=1.02))
    return fig
