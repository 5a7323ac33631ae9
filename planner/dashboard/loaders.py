"""Cached calls into the public API, and optional imports of modules other issues are building.

Every cached function takes ``fp`` (state.specs_fingerprint()): uploaded accelerators are part of the key,
so a re-uploaded spec with the same id is recomputed. Errors (PlannerError) are not cached; pages show them.
"""
from __future__ import annotations

import importlib
import inspect
import json
from pathlib import Path

import pandas as pd
import streamlit as st

import planner
from planner import catalog
from planner.errors import PlannerError
from planner.quant import PRECISIONS

SMOOTHQUANT_STUDY = catalog.DATA_DIR / "measurements" / "smoothquant" / "study.json"
BATCHES = [1, 2, 4, 8, 16, 32, 64, 128, 256]
TRAJECTORY_BATCHES = [1, 4, 16, 64, 256]      # the batch-size picture: five points keep a rerun fast


class Missing(Exception):
    """A module or data file from another part of the project is not there yet."""


def optional(module: str, *names: str):
    """``from module import names`` or Missing(message) when the module (or a name) does not exist yet."""
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name and (module == e.name or module.startswith(e.name + ".")):
            raise Missing(f"`{module}` is not in this version yet") from None
        raise Missing(f"`{module}` needs `{e.name}`, which is not installed") from None
    try:
        return tuple(getattr(mod, n) for n in names)
    except AttributeError as e:
        raise Missing(f"`{module}` has no `{e.name}` yet") from None


@st.cache_data(show_spinner=False, max_entries=512)
def roofline(gpu: str, model: str, precision: str, batch: int, input_len: int | None, output_len: int | None,
             tp: int, engine: str, fp: str = "") -> pd.DataFrame:
    df = planner.roofline_table(gpu, model, precision, batch, input_len, output_len, tp, engine)
    df.insert(0, "gpu", gpu)
    return df


@st.cache_data(show_spinner=False, max_entries=256)
def roof(gpu: str, precision: str, fp: str = "") -> dict:
    """Datasheet roof of one accelerator for a precision's GEMM dtype (peak FLOP/s and DRAM bytes/s)."""
    acc = planner.load_gpu(gpu)
    ridge = planner.ridge_point(gpu, precision)
    return {"gpu": gpu, "dtype": PRECISIONS[precision].gemm_dtype, "bandwidth_bytes_s": acc.bandwidth_bytes_s,
            "peak_flops": ridge * acc.bandwidth_bytes_s, "ridge": ridge}


@st.cache_data(show_spinner=False, max_entries=256)
def estimate(gpu: str, model: str, precision: str, batch: int, input_len: int | None, output_len: int | None,
             tp: int, engine: str, fp: str = "") -> dict:
    return planner.estimate(gpu, model, precision, batch, input_len, output_len, tp, engine=engine)


@st.cache_data(show_spinner=False, max_entries=128)
def sweep(gpus: tuple[str, ...], model: str, precisions: tuple[str, ...], batch: int, input_len: int,
          output_len: int, tp: int, engine: str, fp: str = "") -> pd.DataFrame:
    return planner.sweep(gpus=list(gpus), models=[model], precisions=list(precisions), batches=[batch],
                         input_lens=[input_len], output_lens=[output_len], tps=[tp], engine=engine)


@st.cache_data(show_spinner=False, max_entries=64)
def estimates_by_precision(gpu: str, model: str, precisions: tuple[str, ...], batch: int, input_len: int | None,
                           output_len: int | None, tp: int, engine: str, fp: str = "") -> dict:
    """precision -> estimate dict, or the one-line reason it cannot run (unsupported on this hardware)."""
    out = {}
    for p in precisions:
        try:
            out[p] = planner.estimate(gpu, model, p, batch, input_len, output_len, tp, engine=engine)
        except PlannerError as e:
            out[p] = str(e)
    return out


@st.cache_data(show_spinner=False)
def model_info(model: str) -> dict:
    m = planner.load_model(model)
    return {"id": m.id, "name": m.name, "category": m.category, "params_b": planner.param_count(m) / 1e9,
            "decoder": m.arch.kind in ("decoder", "pipeline")}


@st.cache_data(show_spinner=False)
def cloud_prices(gpus: tuple[str, ...], fp: str = "") -> dict:
    return {g: planner.load_gpu(g).price.cloud_usd_per_gpu_hour for g in gpus}


# ------------------------------------------------------------------ other issues' results (may be missing)

@st.cache_data(show_spinner=False, ttl=30)
def measured_runs() -> list[str]:
    (list_measured_runs,) = optional("planner.validate", "list_measured_runs")
    return [str(p) for p in list_measured_runs()]


@st.cache_data(show_spinner=False, ttl=300, max_entries=1024)   # the measured page validates every run
def validated_run(path: str) -> dict:
    (validate_run,) = optional("planner.validate", "validate_run")
    return validate_run(path)


@st.cache_data(show_spinner=False, ttl=30)
def smoothquant_study(path: str | None = None) -> dict:
    p = Path(path or SMOOTHQUANT_STUDY)
    if not p.is_file():
        raise Missing(f"`{p.relative_to(catalog.ROOT) if p.is_relative_to(catalog.ROOT) else p}` does not exist yet")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise PlannerError(f"{p.name}: cannot read the study ({e})") from None
    if not isinstance(data, dict):
        raise PlannerError(f"{p.name}: expected a JSON object with 'rows' and 'outliers'")
    return data


@st.cache_data(show_spinner=False, ttl=60)
def workloads() -> list[str]:
    (list_workloads,) = optional("planner.catalog", "list_workloads")
    return list(list_workloads())


@st.cache_data(show_spinner="Planning: searching configurations and simulating the day...", max_entries=32)
def capacity_plan(source: str, department_key: str, gpus: tuple[str, ...] | None, precisions: tuple[str, ...] | None,
                  years: int, growth: float, electricity: float, pue: float, seed: int, edits: tuple,
                  overrides: tuple, engine: str = "optimized", fp: str = "", _workload=None) -> dict:
    """planner.capacity.plan on a preset id (``source``) or an uploaded department (``_workload``, keyed by
    ``department_key``), with edited workload fields (``edits``) and cost overrides."""
    (plan,) = optional("planner.capacity", "plan")
    target = _workload if _workload is not None else source
    if edits:
        target = apply_edits(target if _workload is not None else load_workload(source), dict(edits))
    extra = dict(overrides)
    if "engine" in inspect.signature(plan).parameters:      # beyond the contract: the sidebar's engine profile
        extra["engine"] = engine
    return plan(target, gpus=list(gpus) if gpus else None, precisions=list(precisions) if precisions else None,
                years=years, growth=growth, electricity_usd_per_kwh=electricity, pue=pue, seed=seed, **extra)


def load_workload(workload_id: str):
    (lw,) = optional("planner.catalog", "load_workload")
    return lw(workload_id)


def _dump(obj) -> dict:
    return obj.model_dump() if hasattr(obj, "model_dump") else (obj if isinstance(obj, dict) else vars(obj))


def apply_edits(obj, edits: dict):
    """A copy of a (frozen pydantic) workload with fields replaced; ``edits`` keys are dotted paths
    (``arrivals.daily_volume``). Re-validated, so an impossible value is a PlannerError, not a bad plan."""
    data = _dump(obj)
    for path, value in edits.items():
        node = data
        *head, last = path.split(".")
        for k in head:
            node = node[k]
        node[last] = value
    if hasattr(obj, "model_validate"):
        from pydantic import ValidationError
        from planner.errors import format_validation_error
        try:
            return type(obj).model_validate(data)
        except ValidationError as e:
            raise PlannerError(format_validation_error("edited workload", e)) from None
    return data


EDITABLE_WORDS = ("daily_volume", "per_day", "per_hour", "batch_size", "p95", "deadline", "tokens_per_s",
                  "calls_per_study", "images_per_study", "input_tokens", "output_tokens")


def editable_fields(obj, prefix: str = "") -> dict[str, float]:
    """Numeric fields a planner user adjusts (volumes, targets, tokens), as dotted paths; nested mappings
    are searched, lists are not (a department's workloads are edited in its file)."""
    out = {}
    for k, v in _dump(obj).items():
        path = f"{prefix}{k}"
        if isinstance(v, dict) and k != "sources":
            out.update(editable_fields(v, path + "."))
        elif isinstance(v, (int, float)) and not isinstance(v, bool) and any(w in path for w in EDITABLE_WORDS):
            out[path] = v
    return out


def cost_parameter_names() -> set[str] | None:
    """Names plan() accepts as cost overrides, where the capacity part publishes them (else None)."""
    try:
        (cp,) = optional("planner.cost", "CostParams")
    except Missing:
        return None
    return set(getattr(cp, "model_fields", {}))


@st.cache_data(show_spinner=False, max_entries=16)
def report_html(plan_key: str, _plan: dict) -> str:
    """The procurement report of a plan (``plan_key``: the arguments the plan was made from)."""
    (plan_report_html,) = optional("planner.report", "plan_report_html")
    return plan_report_html(_plan)
