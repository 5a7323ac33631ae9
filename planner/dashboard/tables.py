"""Pure table shaping for the pages: API results (dicts, DataFrames) -> tidy DataFrames for figures and tables.

No streamlit and no new modelling: every number is an API number, or an API number restated per study, per
joule or per 1,000 studies (the formula sits next to each such column). Readers of other issues' results
(capacity plans, measured runs, the SmoothQuant study) accept the documented contract and a few obvious
variants of its nesting, so a page keeps working when those modules land.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

HOUR_S = 3600.0

# ------------------------------------------------------------------------------------------ compare


def compare_table(df: pd.DataFrame, prices: dict[str, float | None], category: str) -> pd.DataFrame:
    """One row per (gpu, precision) of a planner.sweep frame with the four compared metrics.

    latency_s: end-to-end time of one batch of requests (LLMs: TTFT + decode; image models: batch latency).
    throughput: output tokens/s (LLMs) or images/s, one replica of tp GPUs.
    studies_per_s: batch / latency_s: one study is one request (one image for image models).
    per_joule: output tokens (images) per joule = batch * output_len (batch) / energy_j of the batch.
    usd_per_1000_studies: cloud $/GPU-hour x GPUs / 3600 / studies_per_s x 1000, at the spec file's low
    on-demand price, full batches and no queueing (the Plan page simulates queueing and owns TCO).
    """
    out = df.copy()
    vision = category == "vision"
    out["latency_s"] = out["latency_s"] if vision else out["e2e_s"]
    out["throughput"] = out["images_per_s"] if vision else out["output_tokens_per_s"]
    out["studies_per_s"] = out["batch"] / out["latency_s"]
    if "energy_j_per_token" in out and not vision:
        out["per_joule"] = 1.0 / out["energy_j_per_token"]
    else:
        work = out["batch"] if vision else out["batch"] * out["output_len"]
        out["per_joule"] = work / out["energy_j"]
    n_gpus = out["tp"] * out.get("pp", 1)
    price = out["gpu"].map(lambda g: prices.get(g)).astype(float)
    out["usd_per_gpu_hour"] = price
    out["usd_per_1000_studies"] = price * n_gpus / HOUR_S / out["studies_per_s"] * 1000
    out["status"] = np.where(~out["supported"].astype(bool), "precision not supported",
                             np.where(~out["fits"].astype(bool), "does not fit in memory", "ok"))
    bad = out["status"] != "ok"
    for c in ("latency_s", "throughput", "studies_per_s", "per_joule", "usd_per_1000_studies"):
        out.loc[bad, c] = np.nan
    keep = ["gpu", "precision", "batch", "tp", "status", "latency_s", "throughput", "studies_per_s", "per_joule",
            "usd_per_gpu_hour", "usd_per_1000_studies", "memory_gb_per_gpu", "avg_power_w"]
    return out[[c for c in keep if c in out]].reset_index(drop=True)


# ------------------------------------------------------------------------------------------ quantization


def quant_table(results: dict[str, dict | str], baseline: str) -> pd.DataFrame:
    """Per precision: memory split and predicted speed-ups over ``baseline`` (ratio of predicted times).
    ``results`` maps precision id -> planner.estimate dict, or an error message where it did not run."""
    rows = []
    base = results.get(baseline)
    base = base if isinstance(base, dict) else None
    for pid, r in results.items():
        if not isinstance(r, dict):
            rows.append({"precision": pid, "status": str(r)})
            continue
        row = {"precision": pid, "status": "ok" if r.get("fits") else "does not fit in memory",
               "weights_gb": r.get("weights_gb_per_gpu"), "kv_cache_gb": r.get("kv_cache_gb_per_gpu"),
               "activations_gb": r.get("activations_gb_per_gpu"), "memory_gb_per_gpu": r.get("memory_gb_per_gpu"),
               "e2e_s": r.get("e2e_s", r.get("latency_s"))}
        for k in ("ttft_s", "tpot_s", "e2e_s", "latency_s"):
            if base and k in r and base.get(k):
                row[f"speedup_{k[:-2]}"] = base[k] / r[k]
        row["reserve_gb"] = max(0.0, (row["memory_gb_per_gpu"] or 0) - sum(
            row[k] or 0 for k in ("weights_gb", "kv_cache_gb", "activations_gb")))
        rows.append(row)
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------------ roofline


def phase_points(tables: dict[int, pd.DataFrame]) -> pd.DataFrame:
    """Whole-phase arithmetic intensity and achieved FLOP/s per batch size, from roofline_table frames."""
    if not tables:
        return pd.DataFrame(columns=["gpu", "phase", "batch", "intensity", "flops_per_s", "time_s",
                                     "memory_bound_share"])
    t = pd.concat([f.assign(batch=b) for b, f in tables.items()], ignore_index=True)
    t["memory_s_bound"] = t["time_s"].where(t["bound"] == "memory", 0.0)
    g = t.groupby(["gpu", "phase", "batch"], sort=False)[["flops", "bytes", "time_s", "memory_s_bound"]].sum()
    g = g[(g["flops"] > 0) & (g["bytes"] > 0) & (g["time_s"] > 0)].reset_index()
    return pd.DataFrame({"gpu": g["gpu"], "phase": g["phase"], "batch": g["batch"],
                         "intensity": g["flops"] / g["bytes"], "flops_per_s": g["flops"] / g["time_s"],
                         "time_s": g["time_s"], "memory_bound_share": g["memory_s_bound"] / g["time_s"]})


def op_points(table: pd.DataFrame) -> pd.DataFrame:
    """Ops that can sit on a roofline chart (finite, positive intensity and FLOPs) with achieved FLOP/s."""
    t = table.copy()
    t["flops_per_s"] = t["flops"] / t["time_s"]
    ok = (t["flops"] > 0) & (t["bytes"] > 0) & (t["time_s"] > 0) & np.isfinite(t["intensity"])
    return t[ok].reset_index(drop=True)


# ------------------------------------------------------------------------------------------ capacity plans


def option_label(o: dict, k: int) -> str:
    if o.get("id") is not None:
        return str(o["id"])
    tp = o.get("tp", 1)
    return f"#{k + 1} {o.get('count', '?')} x {o.get('gpu', '?')} {o.get('precision', '')}" + (f" tp{tp}" if tp and tp != 1 else "")


def options_frame(plan: dict) -> pd.DataFrame:
    """The ranked options (best first) with a label, rank and whether each is on the Pareto set."""
    opts = list(plan.get("options") or [])
    df = pd.DataFrame(opts)
    if df.empty:
        return df
    df.insert(0, "option", [option_label(o, k) for k, o in enumerate(opts)])
    df.insert(0, "rank", range(1, len(df) + 1))
    par = plan.get("pareto") or []
    ids = set()
    for p in par:
        if isinstance(p, dict):
            ids.add(option_label(p, opts.index(p)) if p in opts else str(p.get("id")))
        elif isinstance(p, (int, np.integer)) and not isinstance(p, bool) and 0 <= p < len(opts) and "id" not in df:
            ids.add(df["option"].iloc[int(p)])
        else:
            ids.add(str(p))
    df["on_pareto"] = df["option"].isin(ids)
    rec = recommended_label(plan, df)
    df["recommended"] = df["option"] == rec
    return df


def recommended_label(plan: dict, df: pd.DataFrame) -> str | None:
    rec = plan.get("recommendation")
    if isinstance(rec, dict):
        if "option" in rec and isinstance(rec["option"], dict):
            rec = rec["option"]
        for k, row in enumerate(plan.get("options") or []):
            if row == rec or (rec.get("id") is not None and row.get("id") == rec.get("id")):
                return df["option"].iloc[k]
        keys = ("gpu", "count", "precision", "tp")
        for k, row in enumerate(plan.get("options") or []):
            if all(row.get(x) == rec.get(x) for x in keys if x in rec) and any(x in rec for x in keys):
                return df["option"].iloc[k]
        return None
    if rec is not None and str(rec) in set(df["option"]):
        return str(rec)
    ok = df[df.get("meets_target", pd.Series(True, index=df.index)).astype(bool)]
    return ok["option"].iloc[0] if len(ok) else None


def utilisation_frame(plan: dict, labels: list[str]) -> pd.DataFrame:
    """Long frame (option, hour, utilisation) from ``utilisation_by_hour``: {option id: [24 values]} or
    {option id: {hour: value}}, or a list in option order."""
    u = plan.get("utilisation_by_hour") or {}
    if isinstance(u, list):
        u = {labels[k] if k < len(labels) else str(k): v for k, v in enumerate(u)}
    rows = []
    for key, series in u.items():
        label = labels[key] if isinstance(key, int) and 0 <= key < len(labels) else str(key)
        items = series.items() if isinstance(series, dict) else enumerate(series or [])
        for hour, value in items:
            if isinstance(value, (int, float)) and math.isfinite(value):
                rows.append({"option": label, "hour": int(hour), "utilisation": float(value)})
    return pd.DataFrame(rows, columns=["option", "hour", "utilisation"])


def cost_breakdown(option: dict) -> pd.DataFrame:
    """Yearly cost items of one option (its ``cost_breakdown`` mapping if present, else every
    ``*_per_year_usd`` field other than the total), grouped as the on-premise TCO and, where the plan
    gives them, its cloud alternatives."""
    cb = option.get("cost_breakdown")
    if isinstance(cb, dict):
        items = {k: v for k, v in cb.items() if isinstance(v, (int, float))}
    else:
        items = {k.removesuffix("_per_year_usd"): v for k, v in option.items()
                 if k.endswith("_per_year_usd") and not k.startswith("tco") and isinstance(v, (int, float))}
    rows = [{"bar": "cloud " + k.removeprefix("cloud_").replace("_", " ") if k.startswith("cloud") else
             "on-premise TCO", "item": k.replace("_", " "), "usd_per_year": float(v)} for k, v in items.items()]
    return pd.DataFrame(rows, columns=["bar", "item", "usd_per_year"])


DISPLAY_FIRST = ["rank", "option", "gpu", "count", "precision", "tp", "meets_target", "p95_latency_s",
                 "tco_per_year_usd", "cost_per_1000_studies_usd", "energy_kwh_per_year", "on_pareto", "recommended"]


def options_display(df: pd.DataFrame) -> pd.DataFrame:
    """The options table as shown: key columns first, nested structures (per-workload detail) left out."""
    scalar = [c for c in df.columns if not df[c].map(lambda x: isinstance(x, (list, dict, tuple))).any()]
    first = [c for c in DISPLAY_FIRST if c in scalar]
    return df[first + [c for c in scalar if c not in first and c != "id"]]


def assumptions_frame(plan: dict) -> pd.DataFrame:
    return pd.DataFrame(plan.get("assumptions") or [], columns=None)


# ------------------------------------------------------------------------------------------ measured runs


def measured_rows(v: dict) -> pd.DataFrame:
    df = pd.DataFrame(v.get("rows") or [])
    if df.empty:
        return df
    for c in ("predicted_s", "measured_s"):
        df[c] = pd.to_numeric(df[c], errors="coerce")
    own = (df["predicted_s"] / df["measured_s"] - 1) * 100
    df["error_pct"] = pd.to_numeric(df["error_pct"], errors="coerce").fillna(own) if "error_pct" in df else own
    return df


def e2e_errors(v: dict) -> pd.DataFrame:
    e = v.get("e2e_abs_pct_error")
    if isinstance(e, dict):
        return pd.DataFrame({"phase": list(e), "abs_pct_error": [float(x) if x is not None else np.nan for x in e.values()]})
    if isinstance(e, (int, float)):
        return pd.DataFrame({"phase": ["end to end"], "abs_pct_error": [float(e)]})
    return pd.DataFrame(columns=["phase", "abs_pct_error"])


def speedups(v: dict) -> pd.DataFrame:
    s = v.get("speedups") or {}
    items = s.items() if isinstance(s, dict) else ((x.get("name", f"#{k}"), x) for k, x in enumerate(s))
    rows = []
    for name, x in items:
        if isinstance(x, dict):
            m, p = x.get("measured"), x.get("predicted")
            rows.append({"speed-up": str(name), "measured": m, "predicted": p,
                         "error_pct": (p / m - 1) * 100 if isinstance(m, (int, float)) and isinstance(p, (int, float)) and m else np.nan})
    return pd.DataFrame(rows, columns=["speed-up", "measured", "predicted", "error_pct"])


def runs_summary(results: dict[str, dict | str]) -> pd.DataFrame:
    """One line per measured run: device, model, precision, per-op MdAPE, worst end-to-end error."""
    rows = []
    for path, v in results.items():
        if not isinstance(v, dict):
            rows.append({"run": path, "status": str(v)})
            continue
        e = e2e_errors(v)["abs_pct_error"]
        rows.append({"run": path, "device": v.get("device"), "model": v.get("model"), "precision": v.get("precision"),
                     "op_mdape_pct": v.get("op_mdape_pct"),
                     "e2e_worst_abs_pct_error": float(e.max()) if len(e) else np.nan, "status": "ok"})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------------ SmoothQuant study


def study_rows(study: dict) -> pd.DataFrame:
    df = pd.DataFrame(study.get("rows") or [])
    if not df.empty:
        df["alpha"] = pd.to_numeric(df["alpha"], errors="coerce")
        df = df.sort_values(["granularity", "alpha"]).reset_index(drop=True)
    return df


def study_outliers(study: dict) -> pd.DataFrame:
    """Long frame (layer, channel, stage, max_abs) from ``outliers``. Accepted shapes:
    {"before": [...], "after": [...]}, {layer: {"before": [...], "after": [...]}}, or a list of
    {"channel", "before", "after"[, "layer"]} records."""
    o = study.get("outliers")
    rows: list[dict[str, Any]] = []

    def add(layer, before, after):
        for stage, vals in (("before smoothing", before), ("after smoothing", after)):
            for ch, val in enumerate(vals or []):
                if isinstance(val, (int, float)) and math.isfinite(val):
                    rows.append({"layer": layer, "channel": ch, "stage": stage, "max_abs": abs(float(val))})

    if isinstance(o, dict) and ("before" in o or "after" in o):
        add(str(o.get("layer", "")), o.get("before"), o.get("after"))
    elif isinstance(o, dict):
        for layer, x in o.items():
            if isinstance(x, dict):
                add(str(layer), x.get("before"), x.get("after"))
    elif isinstance(o, list):
        for k, rec in enumerate(o):
            if not isinstance(rec, dict):
                continue
            if isinstance(rec.get("before"), list):
                add(str(rec.get("layer", k)), rec.get("before"), rec.get("after"))
            else:
                ch = rec.get("channel", k)
                for stage, key in (("before smoothing", "before"), ("after smoothing", "after")):
                    val = rec.get(key)
                    if isinstance(val, (int, float)) and math.isfinite(val):
                        rows.append({"layer": str(rec.get("layer", "")), "channel": int(ch), "stage": stage,
                                     "max_abs": abs(float(val))})
    return pd.DataFrame(rows, columns=["layer", "channel", "stage", "max_abs"])


# ------------------------------------------------------------------------------------------ hardware specs


def spec_rows(accs: list, uploaded: set[str]) -> pd.DataFrame:
    rows = []
    for a in accs:
        pk, ic = a.peak_dense, a.interconnect
        rows.append({"id": a.id, "name": a.name, "vendor": a.vendor, "kind": a.kind, "year": a.launch_year,
                     "fp32_tflops": pk.fp32_tflops, "bf16_tflops": pk.bf16_tflops, "fp16_tflops": pk.fp16_tflops,
                     "fp8_tflops": pk.fp8_tflops, "int8_tops": pk.int8_tops, "memory_gb": a.memory.capacity_gb,
                     "memory_tb_s": a.memory.bandwidth_gb_s / 1000, "link": ic.link,
                     "link_gb_s_per_dir": ic.all_to_all_gb_s_per_direction, "max_gpus_per_node": ic.max_gpus_per_node,
                     "tdp_w": a.power.tdp_w, "idle_w": a.power.idle_w, "price_usd": a.price.purchase_usd,
                     "cloud_usd_per_gpu_hour": a.price.cloud_usd_per_gpu_hour,
                     "origin": "uploaded (this session)" if a.id in uploaded else "hw_specs/"})
    return pd.DataFrame(rows)


def source_rows(acc) -> pd.DataFrame:
    return pd.DataFrame([{"field": k, "source": v} for k, v in acc.sources.items()])
