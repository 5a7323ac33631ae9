"""Predicted vs published measurements (data/reference/published_dev.csv): one prediction per row, errors, MdAPE.

The engine of a row follows from its source family, never from the row itself: TensorRT(-LLM) and MLPerf
are 'optimized'; gpt-fast and timm's torch.compile table are 'compiled'; timm eager and NVIDIA's
DeepLearningExamples PyTorch are 'eager'.
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

from planner.catalog import DATA_DIR

PUBLISHED_DEV = DATA_DIR / "reference" / "published_dev.csv"

METRIC_KEY = {"ttft_s": "ttft_s", "tpot_s": "tpot_s", "e2e_s": "e2e_s",
              "output_tokens_per_s_total": "output_tokens_per_s",
              "output_tokens_per_s_per_user": "output_tokens_per_s_per_user",
              "images_per_s_total": "images_per_s", "model_memory_gb": "weights_gb_per_gpu"}


def engine_of(row: dict) -> str:
    sid, loc = row["source_id"], row.get("source_location", "") + " " + row.get("source", "")
    if sid.startswith(("gpt-fast",)) or "dynamo" in loc:
        return "compiled"
    if sid.startswith(("timm", "dle")):
        return "eager"
    return "optimized"


@dataclass(frozen=True)
class RowResult:
    case_id: str
    gpu: str
    model: str
    precision: str
    engine: str
    metric: str
    measured: float
    predicted: float | None
    error: str = ""

    @property
    def ape_pct(self) -> float | None:
        if self.predicted is None:
            return None
        return abs(self.predicted - self.measured) / self.measured * 100

    @property
    def signed_pct(self) -> float | None:
        return None if self.predicted is None else (self.predicted / self.measured - 1) * 100


def read_rows(path: Path = PUBLISHED_DEV) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return [r for r in csv.DictReader(f) if r.get("usable", "yes") == "yes"]


def predict_row(row: dict) -> RowResult:
    from planner.api import estimate
    from planner.errors import PlannerError
    metric = row["metric"]
    gpu = row["gpu"] or "a100-sxm-80gb"           # SQ-003: a memory row, the GPU does not matter
    eng = engine_of(row)
    base = dict(case_id=row["case_id"], gpu=gpu, model=row["model"], precision=row["precision"], engine=eng,
                metric=metric, measured=float(row["value"]))
    try:
        kw = dict(batch=int(row["batch"]), tp=int(row["tp"]), engine=eng, detail=False)
        if row["input_len"]:
            kw.update(input_len=int(row["input_len"]), output_len=max(1, int(row["output_len"] or 1)))
        r = estimate(gpu, row["model"], row["precision"], **kw)
        pred = r.get(METRIC_KEY[metric])
        if pred is None or not math.isfinite(pred):
            return RowResult(**base, predicted=None, error=f"no {metric} for this model")
        return RowResult(**base, predicted=float(pred))
    except PlannerError as e:
        return RowResult(**base, predicted=None, error=str(e))


def mdape(results: list[RowResult]) -> float:
    apes = sorted(r.ape_pct for r in results if r.ape_pct is not None)
    if not apes:
        return float("nan")
    n = len(apes)
    return apes[n // 2] if n % 2 else (apes[n // 2 - 1] + apes[n // 2]) / 2


def published_report(path: Path = PUBLISHED_DEV) -> list[RowResult]:
    return [predict_row(r) for r in read_rows(path)]


# =========================================================================================== measured runs
# Predicted vs measured (planner/measure): a measured run's rows join the roofline's rows of the same
# configuration on (phase, op name). The roofline is evaluated on the device's measured profile
# (data/measurements/<device>/profile.json: achievable rates as peaks, see planner.measure.microbench), so the
# comparison tests the cost model's op accounting, not datasheet efficiencies. torch is not needed here.

MEASUREMENTS_ROOT = DATA_DIR / "measurements"
# (faster precision, baseline) pairs whose speed-up a validation reports when both runs exist
SPEEDUP_PAIRS = (("w8a8", "fp16"), ("w8a8", "bf16"), ("w8a8", "fp32"), ("w8a8-o2", "fp32"), ("w8a8-o2", "bf16"),
                 ("w8a8-f32", "fp32"), ("w8a8-o2-f32", "fp32"), ("w8a8-f32", "w8a8-o2-f32"),
                 ("w8a8-o3", "w8a8-o1"), ("w8a8", "w8a8-o1"),
                 ("w8a8-o2", "w8a8-o1"), ("fp8", "bf16"), ("bf16", "fp32"), ("w8a16", "bf16"), ("w8a16", "fp16"))


def list_measured_runs(root: Path | None = None) -> list[Path]:
    """Metadata files (``<run>.json`` with a ``<run>.csv`` beside them) of every measured run under ``root``
    (default data/measurements), sorted."""
    from planner.measure.runs import find_runs
    return find_runs(MEASUREMENTS_ROOT if root is None else root)


def _run_root(csv_path: Path, meta: dict) -> Path:
    """<root>/<device>/<model>/<precision>/<run>.csv -> <root>."""
    p = csv_path.resolve()
    if len(p.parents) > 3 and p.parents[2].name == meta.get("device"):
        return p.parents[3]
    return MEASUREMENTS_ROOT


def find_profile(csv_path: Path, meta: dict) -> Path:
    """The device profile a run is validated against: the one that was in place when it was measured
    (``profile_date_at_run``; kept under <device>/profiles/ once a newer microbench replaced it). Runs from before
    2026-11-23 05:00 UTC did not record theirs: for them the latest profile measured before the run among those
    kept (what was in place then, as far as it was kept), else the earliest kept. The device's current profile
    is the last resort."""
    from planner.errors import PlannerError
    from planner.measure.runs import archived_profile_path, profile_path
    for root in (_run_root(csv_path, meta), MEASUREMENTS_ROOT):
        p = profile_path(root, meta["device"])
        if meta.get("profile_date_at_run"):
            kept = archived_profile_path(p, str(meta["profile_date_at_run"]))
            if kept.is_file():
                return kept
        elif meta.get("date"):
            nearest = _profile_before(p, str(meta["date"]))
            if nearest is not None:
                return nearest
        if p.is_file():
            return p
    raise PlannerError(f"no device profile for '{meta['device']}' (looked for {profile_path(_run_root(csv_path, meta), meta['device'])}): "
                       f"run planner microbench on that device first, or pass --profile")


def _profile_before(current: Path, run_date: str) -> Path | None:
    """Among a device's profiles (the current one and those kept under profiles/), the latest measured at or
    before ``run_date`` (ISO), else the earliest; None when there are none."""
    import json
    dated = []
    for f in [current] + sorted(current.parent.glob("profiles/profile-*.json")):
        try:
            dated.append((str(json.loads(f.read_text(encoding="utf-8"))["date"]), f))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    if not dated:
        return None
    dated.sort()
    before = [f for d, f in dated if d <= run_date]
    return before[-1] if before else dated[0][1]


def _with_drift(prof: dict, path: Path) -> dict:
    """The profile with ``vs_previous`` taken against the device's profiles measured before it (kept beside it),
    as planner microbench takes it now: profiles from before that check, or from its first form (against the
    one profile replaced), get the current reading."""
    from planner.measure.probe import vs_previous
    from planner.measure.runs import device_profiles
    current = path if path.name == "profile.json" else path.parent.parent / "profile.json"
    before = [p for p in device_profiles(current) if str(p.get("date", "")) < str(prof.get("date", ""))]
    r = vs_previous(prof, before)
    return {**prof, "vs_previous": r} if r is not None else prof


def _scoped_spec(spec, layers: int):
    """The model with only the measured layers (the run's scope)."""
    a = spec.arch
    if getattr(a, "n_layers", None) is None or a.kind == "cnn":
        return spec
    return spec.model_copy(update={"arch": a.model_copy(update={"n_layers": layers})})


def _predicted_phase_rows(spec, precision: str, acc_id: str, meta: dict, phase: str) -> list[dict]:
    from planner import catalog
    from planner.api import roofline_rows
    from planner.arch.pipeline import compile_model
    from planner.quant import check_supported, load_precision
    p = load_precision(precision)
    acc = catalog.load_gpu(acc_id)
    check_supported(acc, p)
    plan = compile_model(spec, p, {})
    i, o = meta.get("input_len") or 0, meta.get("output_len") or 0
    return roofline_rows(plan, acc, p.id, meta["batch"], i, o, 1, "eager", phase)


def _power_report(spec_scope, meta: dict, phase: str, acc_id: str) -> dict | None:
    """Predicted vs measured mean board power of a phase at the measured scope, where the run read the board's
    energy counter (CUDA with NVML: power.measured_phase_power), else None."""
    measured = ((meta.get("phases") or {}).get(phase) or {}).get("power")
    if not measured or not measured.get("power_w"):
        return None
    from planner import catalog
    from planner.api import phase_power_w
    from planner.arch.pipeline import compile_model
    from planner.quant import load_precision
    p = load_precision(meta["precision"])
    i, o = meta.get("input_len") or 0, meta.get("output_len") or 0
    pred = phase_power_w(compile_model(spec_scope, p, {}), catalog.load_gpu(acc_id), p.id, meta["batch"], i, o, 1,
                         "eager", phase)
    return {"predicted_w": pred, "measured_w": measured["power_w"], "error_pct": _pct(pred, measured["power_w"]),
            "basis": "predicted: idle + (power limit - idle) x utilisation (planner.energy) on the profile's device; "
                     "measured: " + measured.get("basis", "NVML")}


def _sum_by_name(rows: list[dict]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for r in rows:
        d = out.setdefault(r["name"], {"time_s": 0.0, "flops": 0.0, "bytes": 0.0, "bounds": {}})
        d["time_s"] += r["time_s"]
        d["flops"] += r["flops"]
        d["bytes"] += r["bytes"]
        d["bounds"][r["bound"]] = d["bounds"].get(r["bound"], 0.0) + r["time_s"]
    return out


def _pct(pred, meas):
    return None if pred is None or meas is None or not meas else (pred / meas - 1.0) * 100.0


def _median(xs):
    xs = sorted(xs)
    if not xs:
        return None
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def _phase_report(spec, spec_scope, meta: dict, mrows: list[dict], phase: str, acc_id: str) -> tuple[list[dict], dict]:
    """Per-op rows and the phase's end-to-end comparison, at the measured scope and scaled to the whole model."""
    pred = _sum_by_name(_predicted_phase_rows(spec_scope, meta["precision"], acc_id, meta, phase))
    meas: dict[str, dict] = {}
    for r in mrows:
        if r["phase"] != phase or r["name"] in ("step", "step_profiled"):
            continue
        d = meas.setdefault(r["name"], {"measured_s": 0.0, "layer_s": 0.0, "model_s": 0.0, "spread": 0.0, "flops": 0.0})
        d["measured_s"] += r["measured_s"]
        d["layer_s" if r["scope"] == "layer" else "model_s"] += r["measured_s"]
        d["spread"] = max(d["spread"], r["spread_pct"] or 0.0)
        d["flops"] += r["profiler_flops"] or 0.0
    rows = []
    for name in list(pred) + [n for n in meas if n not in pred]:
        p, m = pred.get(name), meas.get(name)
        rows.append({"phase": phase, "name": name, "predicted_s": p["time_s"] if p else None,
                     "measured_s": m["measured_s"] if m else None,
                     "error_pct": _pct(p["time_s"] if p else None, m["measured_s"] if m else None),
                     "bound": max(p["bounds"], key=p["bounds"].get) if p else None,
                     "spread_pct": m["spread"] if m else None,
                     "predicted_flops": p["flops"] if p else None, "profiler_flops": m["flops"] if m else None,
                     "note": "" if (p and m) else ("not a separate kernel in this recipe" if p else "not in the cost model")})
    step = next(r for r in mrows if r["phase"] == phase and r["name"] == "step")
    pred_e2e = sum(r["predicted_s"] or 0.0 for r in rows)
    scope = {"predicted_s": pred_e2e, "measured_s": step["measured_s"], "error_pct": _pct(pred_e2e, step["measured_s"]),
             "spread_pct": step["spread_pct"], "sum_of_op_regions_s": sum(m["measured_s"] for m in meas.values())}
    # whole-model extrapolation: layer rows x (layers_total / layers_measured); the time outside the op regions
    # (Python between ops) is kept as measured
    n_meas, n_tot = meta["layers_measured"], meta["layers_total"]
    factor = n_tot / n_meas
    gap = step["measured_s"] - scope["sum_of_op_regions_s"]
    full_meas = sum(m["layer_s"] * factor + m["model_s"] for m in meas.values()) + gap
    full_pred = sum(r["time_s"] for r in _sum_by_name(_predicted_phase_rows(spec, meta["precision"], acc_id, meta, phase)).values())
    scope["whole_model"] = {"layers_measured": n_meas, "layers_total": n_tot, "layer_scale": factor,
                            "measured_scaled_s": full_meas, "predicted_s": full_pred,
                            "error_pct": _pct(full_pred, full_meas)}
    return rows, scope


def _at_statistic(mrows: list[dict], statistic: str) -> list[dict]:
    """Measured rows with ``measured_s`` at ``statistic``: the minimum of the repetitions (as stored) or their
    median."""
    return mrows if statistic == "min" else [{**r, "measured_s": r["median_s"]} for r in mrows]


def _speedups(meta: dict, e2e: dict, root: Path, profile, statistic: str = "median",
              scale_to_state: bool = False) -> dict:
    """Measured and predicted speed-ups between this run and sibling runs of the same configuration."""
    import json

    from planner.measure.runs import read_run
    key = (meta["device"], meta["model"], meta["batch"], meta.get("input_len"), meta.get("output_len"),
           meta["layers_measured"])
    latest: dict[str, Path] = {}
    for j in list_measured_runs(root):
        try:
            m = json.loads(j.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if (m.get("device"), m.get("model"), m.get("batch"), m.get("input_len"), m.get("output_len"),
                m.get("layers_measured")) == key:
            if m["precision"] not in latest or j.name > latest[m["precision"]].name:
                latest[m["precision"]] = j
    out = {}
    cache = {meta["precision"]: e2e}
    for fast, base in SPEEDUP_PAIRS:
        if meta["precision"] not in (fast, base) or fast not in latest or base not in latest:
            continue
        for prec in (fast, base):
            if prec not in cache:
                cache[prec] = _validate_core(*read_run(latest[prec]), latest[prec].with_suffix(".csv"), profile,
                                             with_speedups=False, statistic=statistic,
                                             scale_to_state=scale_to_state)["e2e"]
        for phase in cache[fast]:
            if phase in cache[base]:
                meas = cache[base][phase]["measured_s"] / cache[fast][phase]["measured_s"]
                pred = cache[base][phase]["predicted_s"] / cache[fast][phase]["predicted_s"]
                out[f"{fast}_over_{base}_{phase}"] = {"faster": fast, "baseline": base, "phase": phase,
                                                      "measured": meas, "predicted": pred,
                                                      "error_pct": (pred / meas - 1) * 100}
    return out


def scales_by_default(profile: dict) -> bool:
    """Whether validation predicts from the profile scaled to a run's device state unless told otherwise: for a
    profile whose reference probes were taken once per round of its GEMM sweep (the minutes its rates come from).
    With them, in the campaign of 23:48-00:10 UTC (2026-11-22) the scaled errors were within 15 % on 18 of 21
    phases and the unscaled ones on 8 (the machine ran 1.2-1.5x faster minutes after its profile); with the older
    burst of probes after the sweep, the probes read 10-35 % off while the model ran at the profile's speed."""
    return bool(profile.get("probe_reference_per_round"))


def _validate_core(meta: dict, mrows: list[dict], csv_path: Path, profile, with_speedups: bool = True,
                   statistic: str = "median", scale_to_state: bool | None = None) -> dict:
    from planner.measure.microbench import STATISTICS, int8_scheme_for, profile_at, use_profile
    from planner.measure.probe import device_state, drift_note, kernel_state, unsteady_note
    from planner.specs import ModelSpec
    spec = ModelSpec.model_validate(meta["model_spec"])
    spec_scope = _scoped_spec(spec, meta["layers_measured"])
    phases = [p for p in ("vision", "prefill", "decode") if any(r["phase"] == p for r in mrows)]
    # predictions from the profile scaled to the device state the run probed (planner.measure.probe) and from
    # the profile as measured, one as the headline and the other beside it, so drift and model error can be told
    # apart (scale_to_state None: scales_by_default). Profile and run at the same statistic: typical (median)
    # repetitions by default, best-case minima beside them
    if scale_to_state is None:
        scale_to_state = scales_by_default(profile)
    int8 = int8_scheme_for(profile, (meta.get("recipe") or {}).get("int8_backend"))
    state = device_state(profile, meta.get("device_state_probes"))
    kern = kernel_state(profile, meta.get("kernel_state_probes"))
    if state is not None and kern is not None:
        state = {**state, "kernel": kern}          # the int8 GEMMs scale by their own kernel's probe
    prof_s, rows_s = profile_at(profile, statistic), _at_statistic(mrows, statistic)
    rows, e2e = [], {}
    primary = state if scale_to_state else None
    with use_profile(prof_s, primary, int8) as acc_id:
        for ph in phases:
            r, s = _phase_report(spec, spec_scope, meta, rows_s, ph, acc_id)
            rows += r
            e2e[ph] = s
            power = _power_report(spec_scope, meta, ph, acc_id)
            if power is not None:
                e2e[ph]["power"] = power
    if state is not None:
        with use_profile(prof_s, None if scale_to_state else state, int8) as acc_id:
            for ph in phases:
                p_alt = _phase_report(spec, spec_scope, meta, rows_s, ph, acc_id)[1]["predicted_s"]
                e2e[ph]["unscaled_profile" if scale_to_state else "scaled_to_device_state"] = {
                    "predicted_s": p_alt, "error_pct": _pct(p_alt, e2e[ph]["measured_s"])}
    other = next(x for x in STATISTICS if x != statistic)
    with use_profile(profile_at(profile, other), primary, int8) as acc_id:
        for ph in phases:
            o = _phase_report(spec, spec_scope, meta, _at_statistic(mrows, other), ph, acc_id)[1]
            e2e[ph]["at_" + other] = {k: o[k] for k in ("predicted_s", "measured_s", "error_pct")}
    apes = [abs(r["error_pct"]) for r in rows if r["error_pct"] is not None]
    out = {"device": meta["device"], "model": meta["model"], "precision": meta["precision"],
           "int8_backend": (meta.get("recipe") or {}).get("int8_backend"), "batch": meta["batch"],
           "input_len": meta.get("input_len"), "output_len": meta.get("output_len"),
           "layers_measured": meta["layers_measured"], "layers_total": meta["layers_total"], "run": meta["run"],
           "date": meta.get("date"), "profile_date": profile.get("date"),
           "statistic": statistic, "typical_missing": prof_s.get("typical_missing", []),
           "scaled_to_device_state": bool(scale_to_state and state),
           "device_state": state, "profile_unsteady": unsteady_note(profile),
           "profile_drift": drift_note(profile.get("vs_previous")),
           "op_mdape_pct": _median(apes),
           "e2e_abs_pct_error": {ph: abs(s["error_pct"]) for ph, s in e2e.items()},
           "e2e": e2e, "cpu_share": {ph: v.get("cpu_share") for ph, v in meta.get("phases", {}).items()}}
    if "decode" in e2e and "prefill" in e2e and meta.get("output_len"):
        steps = max(meta["output_len"] - 1, 0)
        m = e2e["prefill"]["measured_s"] + steps * e2e["decode"]["measured_s"]
        p = e2e["prefill"]["predicted_s"] + steps * e2e["decode"]["predicted_s"]
        out["request"] = {"measured_s": m, "predicted_s": p, "error_pct": _pct(p, m)}
    if with_speedups:
        out["speedups"] = _speedups(meta, e2e, _run_root(csv_path, meta), profile, statistic, scale_to_state)
    out["rows"] = rows
    return out


def validate_run(path, profile_file: Path | None = None, statistic: str = "median",
                 scale_to_state: bool | None = None) -> dict:
    """Predicted vs measured for one measured run (its .csv, .json or stem), profile and run both at
    ``statistic`` (``median``: typical repetitions; ``min``: the fastest; the other one's end-to-end errors are
    reported beside, under ``e2e[phase]["at_<other>"]``), from the profile scaled to the device state the run
    probed (``scale_to_state`` True) or as measured (False; None: ``scales_by_default``), the other one beside,
    under ``unscaled_profile`` or ``scaled_to_device_state``: device, model, precision,
    op_mdape_pct, e2e_abs_pct_error per phase (at the measured scope: the layers measured plus embedding,
    final norm and lm_head), e2e (with the whole-model extrapolation), speedups against sibling runs of other
    precisions (each with measured and predicted), and rows (phase, name, predicted_s, measured_s, error_pct)."""
    from planner.measure.microbench import load_profile
    from planner.measure.runs import read_run, resolve_run
    csv_path, _ = resolve_run(path)
    meta, mrows = read_run(path)
    prof_path = profile_file or find_profile(csv_path, meta)
    prof = _with_drift(load_profile(prof_path), Path(prof_path))
    return _validate_core(meta, mrows, csv_path, prof, statistic=statistic, scale_to_state=scale_to_state)
