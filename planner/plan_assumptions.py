"""The inputs a capacity plan states with its result: each workload's figures, the assumptions table (every
value with its unit and source, or the word 'assumption') and how far to trust the model (its fit error).
"""
from __future__ import annotations

from planner import catalog
from planner.batching import SHARED_SLICE_S
from planner.cost import assumptions
from planner.fleet import CO_LOCATED_MAX_SEQS
from planner.service_tables import (DEFAULT_MAX_SEQS, DEFAULT_MAX_WAIT_S, DEFAULT_TOKEN_BUDGET,
                                    DEFAULT_VISION_MAX_BATCH)
from planner.workload_specs import Workload


def describe_workload(w: Workload, dept) -> dict:
    """A workload's row in the plan: volume, peak, target, tokens, images, and its department volume scale."""
    scale = 1.0
    if dept is not None:
        scale = dept.scales[[x.id for x in dept.workloads].index(w.id)]
    return {"id": w.id, "name": w.name, "model": w.model, "studies_per_day": w.studies_per_day(),
            "peak_per_hour": w.peak_per_hour(), "arrivals": w.arrivals.kind, "target": w.target.describe(),
            "input_tokens": w.input_tokens, "output_tokens": w.output_tokens, "images_per_study": w.images_per_study,
            "calls_per_study": w.calls_per_study, "volume_scale": scale}


def plan_assumptions(params, workloads, dept, hours, seed, engine, years, growth) -> list[dict]:
    """Every input of the plan as {name, value, unit, source}: costs, simulation settings, workload figures."""
    rows = assumptions(params)
    sim = [("simulated_hours", hours, "h", "input: one simulated day repeats all year"),
           ("seed", seed, "", "input: arrivals and image counts are seeded"),
           ("engine", engine, "", "planner --engine profile: optimized = TensorRT-LLM/vLLM-class"),
           ("planning_years", years, "years", "input"),
           ("growth", growth, "per year", "input; reference §4d default 5 %/yr [A from S 34, 47]"),
           ("llm_max_seqs", DEFAULT_MAX_SEQS, "requests", "vLLM EngineArgs default max_num_seqs"),
           ("llm_token_budget", DEFAULT_TOKEN_BUDGET, "prompt tokens per prefill iteration",
            "assumption: vLLM max_num_batched_tokens scale"),
           ("vision_max_batch", DEFAULT_VISION_MAX_BATCH, "images", "assumption"),
           ("vision_max_wait_s", DEFAULT_MAX_WAIT_S, "s", "assumption: Triton dynamic batcher delay"),
           ("batch_jobs", "daily", "", "assumption: a batch workload is costed as one run per simulated day"),
           ("co_location", "single-replica workloads", "",
            "assumption: in a department, a workload that needs one replica may share another workload's GPUs "
            "when the engines' memory fits and a shared simulation meets every target (no MIG slices)"),
           ("co_located_llm_max_seqs", CO_LOCATED_MAX_SEQS, "requests", "assumption: in-flight cap of an LLM "
            "engine that shares its GPU, so that the KV caches of co-located engines fit"),
           ("shared_gpu_time_slice_s", SHARED_SLICE_S, "s", "assumption: engines sharing a GPU take turns "
            "at about this granularity while both have work (GPU time-slicing between processes)")]
    rows += [{"name": n, "value": v, "unit": u, "source": s} for n, v, u, s in sim]
    if dept is not None and dept.annual_exams:
        rows.append({"name": f"{dept.id}.annual_exams", "value": dept.annual_exams, "unit": "exams/yr",
                     "source": dept.sources.get("annual_exams", "input")})
    for w in workloads:
        scale = describe_workload(w, dept)["volume_scale"]
        for path, value, unit in _workload_figures(w):
            src = next((w.sources[p] for p in _prefixes(path) if p in w.sources), "input")
            if scale != 1 and path in ("arrivals.daily_volume", "arrivals.batch_size"):
                src = f"{src}; scaled x{scale:.3g} for this department (annual_exams / reference_annual_exams)"
            rows.append({"name": f"{w.id}.{path}", "value": value, "unit": unit, "source": src})
    return rows


def _workload_figures(w: Workload):
    yield "model", w.model, "catalog id"
    for k, unit in (("input_tokens", "tokens"), ("output_tokens", "tokens"), ("images_per_study", "images"),
                    ("reference_annual_exams", "exams/yr")):
        if getattr(w, k) is not None:
            yield k, getattr(w, k), unit
    if w.calls_per_study != 1:
        yield "calls_per_study", w.calls_per_study, "calls"
    a = w.arrivals
    if a.kind == "poisson":
        yield "arrivals.daily_volume", round(a.daily_volume, 2), "studies/day"
        yield "arrivals.diurnal", a.diurnal.kind, f"peak {w.peak_per_hour():.1f} studies/h"
    else:
        yield "arrivals.batch_size", a.batch_size, "studies"
    for k, v in w.target.model_dump(exclude_none=True).items():
        yield f"target.{k}", v, k.rsplit("_", 1)[-1] if k.endswith("_s") or k.endswith("_h") else ""


def _prefixes(path: str):
    parts = path.split(".")
    return [".".join(parts[:i]) for i in range(len(parts), 0, -1)]


def model_validation() -> dict:
    """The fitted model's error and what it was measured on (the report's trust section)."""
    cal = catalog.load_calibration()
    return {"fit_mdape_pct": cal.fit_mdape_pct, "crossval_mdape_pct": cal.crossval_mdape_pct,
            "fitted_on": cal.fitted_on, "fitted_by": cal.fitted_by,
            "basis": "in-sample: median absolute percentage error of the roofline predictions against the "
                     "published measurements in data/reference/published_dev.csv, the same rows the efficiency "
                     "factors were fitted to (data/calibration/efficiency.yaml). Out of sample (refit without "
                     "each source family, then predict it: benchmarks/crossval.py) the MdAPE is "
                     f"{cal.crossval_mdape_pct} %. The queueing simulator is checked separately against M/M/1, M/M/c (Erlang C) and "
                     "M/D/1 closed forms in tests/test_serving.py."}
