"""Procurement report: a plan result (planner.capacity.plan) as one self-contained HTML page, and as CSV.

Pure: a dict in, a string out (the CLI writes the file). plotly.js is inlined once, so the page opens offline
and can be attached to a purchase request. Sections: recommendation and two alternatives, options table,
latency-vs-cost chart, utilisation over the day, cost breakdown, sensitivity to growth and electricity price,
assumptions and sources, and how far to trust the model (its validation error).
"""
from __future__ import annotations

import csv
import datetime as _dt
import html
import io
import json

from planner.mig import fleet_label

CSV_COLUMNS = ("id", "gpu", "count", "precision", "tp", "replicas", "meets_target", "p50_latency_s", "p95_latency_s",
               "p99_latency_s", "p95_ttft_s", "p95_vs_target", "utilisation", "peak_hour_utilisation",
               "memory_gb_per_gpu", "tco_per_year_usd", "cost_per_1000_studies_usd", "capex_usd",
               "capex_per_year_usd", "maintenance_per_year_usd", "energy_cost_per_year_usd", "energy_kwh_per_year",
               "energy_wh_per_study", "cloud_on_demand_per_year_usd", "cloud_reserved_per_year_usd",
               "break_even_months_vs_on_demand", "break_even_months_vs_reserved", "fails_in_year", "pareto",
               "price_basis")


def options_csv(plan: dict) -> str:
    """The options table as CSV (one row per option, CSV_COLUMNS)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for o in plan.get("options", []):
        w.writerow({k: ("" if o.get(k) is None else o.get(k)) for k in CSV_COLUMNS})
    return buf.getvalue()


# --------------------------------------------------------------------------------------------- formatting

def _e(x) -> str:
    return html.escape(str(x))


def _num(x, digits=3, prefix="", suffix="") -> str:
    if x is None:
        return "–"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, (int, float)):
        if abs(x) >= 1000:
            return f"{prefix}{x:,.0f}{suffix}"
        return f"{prefix}{x:.{digits}g}{suffix}"
    return _e(x)


def _usd(x) -> str:
    return _num(x, 3, "$")


def _table(rows: list[dict], cols: list[tuple[str, str, object]], cls: str = "") -> str:
    """cols: (key, header, formatter)."""
    head = "".join(f"<th>{_e(h)}</th>" for _, h, _ in cols)
    body = []
    for r in rows:
        cells = "".join(f"<td>{fmt(r.get(k)) if fmt else _e(r.get(k, ''))}</td>" for k, _, fmt in cols)
        body.append(f"<tr>{cells}</tr>")
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _fig_html(fig) -> str:
    fig.update_layout(template="plotly_white", margin=dict(l=60, r=20, t=50, b=50), height=420)
    return fig.to_html(full_html=False, include_plotlyjs=False, config={"displaylogo": False})


# --------------------------------------------------------------------------------------------- charts

def _latency_cost_chart(plan: dict) -> str:
    import plotly.graph_objects as go
    opts = [o for o in plan["options"] if o.get("tco_per_year_usd") is not None]
    if not opts:
        return "<p>No option has a purchase price, so there is no cost axis.</p>"
    single = plan["kind"] == "workload"
    fig = go.Figure()
    for gpu in sorted({o["gpu"] for o in opts}):
        pts = [o for o in opts if o["gpu"] == gpu]
        y = [o["p95_latency_s"] if single else o["p95_vs_target"] for o in pts]
        fig.add_trace(go.Scatter(
            x=[o["tco_per_year_usd"] for o in pts], y=y, mode="markers", name=gpu,
            marker=dict(size=[14 if o.get("pareto") else 9 for o in pts],
                        symbol=["star" if o.get("pareto") else "circle" for o in pts]),
            text=[f"{o['id']}<br>{_e(fleet_label(o))}, {o['precision']}, tp {o['tp']}" for o in pts],
            hovertemplate="%{text}<br>TCO $%{x:,.0f}/yr<br>%{y:.3g}<extra></extra>"))
    target = None
    if single:
        t = plan["options"][0]["workloads"][0]["target"]
        target = t.get("p95_latency_s") or t.get("p95_ttft_s")
    line = target if single else 1.0
    if line:
        fig.add_hline(y=line, line_dash="dash", annotation_text="target")
    fig.update_layout(title="p95 latency against total cost of ownership (stars: Pareto set)",
                      xaxis_title="TCO per year (USD)",
                      yaxis_title="p95 latency (s)" if single else "worst p95 / target over the workloads")
    return _fig_html(fig)


def _utilisation_chart(plan: dict, top: list[dict]) -> str:
    import plotly.graph_objects as go
    fig = go.Figure()
    for o in top:
        u = plan["utilisation_by_hour"].get(o["id"], [])
        fig.add_trace(go.Scatter(x=list(range(len(u))), y=[100 * x for x in u], mode="lines+markers", name=o["id"]))
    fig.update_layout(title="Simulated GPU utilisation over the day (busy share of the fleet's GPU time)",
                      xaxis_title="hour of day", yaxis_title="utilisation (%)")
    return _fig_html(fig)


def _queue_chart(rec: dict) -> str:
    import plotly.graph_objects as go
    fig = go.Figure()
    for w in rec["workloads"]:
        q = w.get("queue_length_by_minute") or []
        fig.add_trace(go.Scatter(x=[m / 60 for m in range(len(q))], y=q, mode="lines", name=w["workload"]))
    fig.update_layout(title=f"Waiting requests over the day, recommended option ({rec['id']}), minute averages",
                      xaxis_title="hour of day", yaxis_title="requests waiting", height=320)
    return _fig_html(fig)


def _cost_chart(top: list[dict]) -> str:
    import plotly.graph_objects as go
    names = [o["id"] for o in top]
    fig = go.Figure()
    for key, label in (("capex_per_year_usd", "hardware (amortised)"), ("maintenance_per_year_usd", "maintenance"),
                       ("energy_cost_per_year_usd", "electricity (incl. PUE)")):
        fig.add_trace(go.Bar(x=names, y=[o.get(key) or 0 for o in top], name=label))
    for key, label, sym in (("cloud_reserved_per_year_usd", "cloud, reserved", "diamond"),
                            ("cloud_on_demand_per_year_usd", "cloud, on demand", "x")):
        fig.add_trace(go.Scatter(x=names, y=[o.get(key) for o in top], mode="markers", name=label,
                                 marker=dict(size=13, symbol=sym)))
    fig.update_layout(barmode="stack", title="Cost per year: on-premise breakdown against renting the same GPUs",
                      yaxis_title="USD per year")
    return _fig_html(fig)


def _electricity_chart(plan: dict) -> str:
    import plotly.graph_objects as go
    rows = plan.get("sensitivity", {}).get("electricity", [])
    fig = go.Figure()
    for oid in dict.fromkeys(r["option"] for r in rows):
        pts = [r for r in rows if r["option"] == oid and r["tco_per_year_usd"] is not None]
        fig.add_trace(go.Scatter(x=[r["usd_per_kwh"] for r in pts], y=[r["tco_per_year_usd"] for r in pts],
                                 mode="lines+markers", name=oid))
    fig.update_layout(title="TCO per year against electricity price", xaxis_title="USD per kWh",
                      yaxis_title="USD per year", height=360)
    return _fig_html(fig)


# --------------------------------------------------------------------------------------------- sections

def _card(o: dict, title: str, years: int) -> str:
    fy = o.get("fails_in_year")
    growth = (f"meets the target through year {years}" if fy is None else
              f"stops meeting the target in year {fy}")
    items = [("Fleet", f"{_e(fleet_label(o))}, {_e(o['precision'])}, tp {o['tp']}, "
                       f"{o['replicas']} replica(s)"),
             ("p95 latency", f"{_num(o['p95_latency_s'])} s" + (f" (p95 TTFT {_num(o['p95_ttft_s'])} s)"
                                                                  if o.get("p95_ttft_s") else "")),
             ("TCO per year", _usd(o.get("tco_per_year_usd"))),
             ("Per 1,000 studies", _usd(o.get("cost_per_1000_studies_usd"))),
             ("Capital cost", _usd(o.get("capex_usd"))),
             ("Energy", f"{_num(o.get('energy_kwh_per_year'))} kWh/yr incl. PUE"),
             ("Utilisation", f"{_num(100 * o['utilisation'])} % mean, {_num(100 * o['peak_hour_utilisation'])} % "
                             f"peak hour"),
             ("Cloud instead", f"{_usd(o.get('cloud_reserved_per_year_usd'))}/yr reserved, "
                               f"{_usd(o.get('cloud_on_demand_per_year_usd'))}/yr on demand"),
             ("Break-even vs cloud", f"{_num(o.get('break_even_months_vs_reserved'))} months (reserved)"),
             ("Growth", growth)]
    dl = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in items)
    return f'<div class="card"><h3>{_e(title)}: {_e(o["id"])}</h3><dl>{dl}</dl></div>'


def _growth_table(plan: dict) -> str:
    rows = plan.get("sensitivity", {}).get("growth", [])
    if not rows:
        return ""
    horizon = plan["sensitivity"].get("growth_horizon_years", 10)
    grid = sorted({r["growth"] for r in rows})
    out = []
    for oid in dict.fromkeys(r["option"] for r in rows):
        rr = {r["growth"]: r for r in rows if r["option"] == oid}
        first = next(iter(rr.values()))
        cap = first["max_volume_multiple"]
        cap_s = f">= {cap:.2g}x" if first["max_volume_multiple_is_search_limit"] else f"{cap:.2g}x"
        cells = "".join(f"<td>{'beyond ' + str(horizon) if rr[g]['fails_in_year'] is None else rr[g]['fails_in_year']}"
                        f"</td>" for g in grid)
        out.append(f"<tr><td>{_e(oid)}</td><td>{cap_s}</td>{cells}</tr>")
    head = "".join(f"<th>{100 * g:.0f} %/yr</th>" for g in grid)
    return (f"<table><thead><tr><th>option</th><th>volume it sustains</th>{head}</tr></thead>"
            f"<tbody>{''.join(out)}</tbody></table><p class=note>Year in which the option first misses a target at "
            f"each growth rate (simulated volume multiple, bisection).</p>")


OPTION_COLS = [("id", "option", None), ("count", "GPUs", _num), ("precision", "precision", None), ("tp", "tp", _num),
               ("p95_latency_s", "p95 s", _num), ("p95_vs_target", "p95/target", _num),
               ("utilisation", "util.", lambda x: _num(None if x is None else 100 * x, 2, suffix=" %")),
               ("tco_per_year_usd", "TCO/yr", _usd), ("cost_per_1000_studies_usd", "$/1000 studies", _usd),
               ("energy_kwh_per_year", "kWh/yr", _num), ("cloud_reserved_per_year_usd", "cloud reserved/yr", _usd),
               ("fails_in_year", "fails in year", _num), ("pareto", "Pareto", _num)]


def _workload_section(plan: dict) -> str:
    cols = [("id", "workload", None), ("model", "model", None), ("studies_per_day", "studies/day", _num),
            ("peak_per_hour", "peak/h", _num), ("target", "target", None), ("volume_scale", "volume x", _num)]
    skipped = "".join(f"<li><b>{_e(s['workload'])}</b> is not planned: {_e(s['reason'])}</li>"
                      for s in plan.get("skipped", []))
    return _table(plan["workloads"], cols) + (f"<ul class=warn>{skipped}</ul>" if skipped else "")


def _validation_section(plan: dict) -> str:
    v = plan.get("validation") or {}
    mdape = v.get("fit_mdape_pct")
    figure = f"{mdape:.1f} %" if mdape is not None else "not available"
    cv = v.get("crossval_mdape_pct")
    out = f" and <b>{cv:.1f} %</b> out of sample (leave one source family out)" if cv is not None else ""
    return (f"<p>Latencies come from an op-level roofline model with efficiency factors fitted to published "
            f"measurements. Its median absolute percentage error is <b>{figure}</b> "
            f"<b>in-sample</b> against <code>published_dev</code>{out} (fitted {_e(v.get('fitted_on', '?'))} by "
            f"{_e(v.get('fitted_by', '?'))}). {_e(v.get('basis', ''))}</p>"
            "<p>Treat latencies and GPU counts near a target as uncertain by at least that much: the options "
            "table shows p95/target so that margins are visible. Quantized precisions (fp8, w8a8) change model "
            "outputs; validate their clinical accuracy before deployment.</p>")


CSS = """body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1150px;
color:#222;padding:0 1rem}h1{font-size:1.6rem}h2{border-bottom:2px solid #ddd;padding-bottom:.2rem;margin-top:2rem}
table{border-collapse:collapse;width:100%;font-size:.85rem;margin:.5rem 0}
th,td{border:1px solid #ddd;padding:.3rem .4rem;text-align:left;vertical-align:top}th{background:#f4f6f8}.cards{display:flex;gap:1rem;flex-wrap:wrap}
.card{flex:1 1 320px;border:1px solid #ccd;border-radius:6px;padding:.6rem 1rem;background:#fafbff}
.card h3{font-size:1rem;margin:.2rem 0 .5rem}dl{display:grid;grid-template-columns:max-content 1fr;gap:.15rem .8rem;
margin:0;font-size:.88rem}dt{color:#555}dd{margin:0}.note{color:#555;font-size:.85rem}.warn{color:#8a4b00}
.msg{background:#fff6e0;border:1px solid #e8c46a;padding:.6rem 1rem;border-radius:6px}"""


def plan_report_html(plan: dict) -> str:
    """A self-contained HTML procurement report of a plan result."""
    from plotly.offline import get_plotlyjs
    title = f"GPU capacity plan: {plan['name']}"
    parts = [f"<h1>{_e(title)}</h1>",
             f"<p class=note>radplan, {_dt.date.today().isoformat()}. {len(plan['gpus_considered'])} accelerator "
             f"type(s) considered; {plan['years']}-year horizon, {100 * plan['growth']:.0f} %/yr volume growth, "
             f"seed {plan['seed']}, {plan['hours']:g} simulated hours, engine profile {_e(plan['engine'])}.</p>",
             f"<p class=msg>{_e(plan['message'])}</p>", "<h2>Workloads</h2>", _workload_section(plan)]
    opts = plan.get("options", [])
    if opts:
        rec, alts = plan["recommendation"], plan["alternatives"]
        top = [rec] + alts
        cards = [_card(rec, "Recommendation", plan["years"])]
        cards += [_card(a, f"Alternative {k}", plan["years"]) for k, a in enumerate(alts, 1)]
        per_wl = [dict(w, option=o["id"]) for o in top for w in o["workloads"]]
        wl_cols = [("option", "option", None), ("workload", "workload", None), ("precision", "precision", None),
                   ("tp", "tp", _num), ("count", "GPUs", _num), ("p50_latency_s", "p50 s", _num),
                   ("p95_latency_s", "p95 s", _num), ("p99_latency_s", "p99 s", _num),
                   ("p95_ttft_s", "p95 TTFT s", _num),
                   ("p95_vs_target", "p95/target", _num), ("peak_hour_utilisation", "peak-hour util.", _num),
                   ("max_queue_length", "max queue", _num)]
        uncal = sorted({o["gpu"] for o in top if o.get("efficiency_calibrated") is False})
        caution = ("<p class=msg>Caution: " + ", ".join(_e(g) for g in uncal) + " belong(s) to accelerator "
                   "families with no published measurement in the calibration set; their latencies use "
                   "efficiency factors fitted on NVIDIA GPUs and may be optimistic. Confirm with a vendor "
                   "benchmark or a measured run before buying.</p>") if uncal else ""
        parts += ["<h2>Recommendation and alternatives</h2>", f'<div class="cards">{"".join(cards)}</div>', caution,
                  "<h3>Per workload</h3>", _table(per_wl, wl_cols),
                  "<h2>Options</h2><p class=note>Every configuration that met the targets in simulation, cheapest "
                  "first (TCO per year). Pareto: not beaten on cost, p95/target and energy at once.</p>",
                  _table(opts, OPTION_COLS), _latency_cost_chart(plan),
                  "<h2>Utilisation and queues over the day</h2>", _utilisation_chart(plan, top), _queue_chart(rec),
                  "<h2>Cost breakdown</h2>", _cost_chart(top),
                  "<h2>Sensitivity</h2><h3>Volume growth</h3>", _growth_table(plan),
                  "<h3>Electricity price</h3>", _electricity_chart(plan)]
    else:
        cols = [("workload", "workload", None), ("gpu", "GPU", None), ("precision", "precision", None),
                ("tp", "tp", _num), ("count", "GPUs", _num), ("achieves", "what it achieves", None)]
        parts += ["<h2>No option meets the target</h2>", _table(plan.get("closest", []), cols)]
    acols = [("name", "input", None), ("value", "value", _num), ("unit", "unit", None), ("source", "source", None)]
    parts += ["<h2>Assumptions and sources</h2><p class=note>Tags as in the reference: [S n] a cited source, [D] "
              "derived, [A] or 'assumption' an assumption to replace with site data.</p>",
              _table(plan.get("assumptions", []), acols), "<h2>How far to trust these numbers</h2>",
              _validation_section(plan),
              "<details><summary>Plan data (JSON)</summary>"
              f"<pre>{_e(json.dumps(_slim(plan), indent=1))}</pre></details>"]
    return ("<!DOCTYPE html><html lang=en><head><meta charset=utf-8>"
            f"<title>{_e(title)}</title><style>{CSS}</style><script>{get_plotlyjs()}</script></head><body>"
            + "\n".join(parts) + "</body></html>")


def _slim(plan: dict) -> dict:
    """The plan without the long per-minute series (they are in the charts)."""
    out = dict(plan)
    out["options"] = [dict(o, workloads=[{k: v for k, v in w.items() if k != "queue_length_by_minute"}
                                         for w in o["workloads"]]) for o in plan.get("options", [])]
    for k in ("recommendation", "alternatives", "utilisation_by_hour"):
        out.pop(k, None)
    return out
