"""The only reader of spec, model and calibration files. Everything returned is a validated, frozen object.

Accelerators come from ``hw_specs/`` plus any folder named by ``--specs-dir`` or the ``RADPLAN_SPECS_DIR``
environment variable (``os.pathsep``-separated); a user file with the id of a shipped one replaces it.
"""
from __future__ import annotations

import functools
import os
from pathlib import Path

import yaml
from pydantic import ValidationError

from planner.errors import SpecFileError, UnknownIdError, format_validation_error
from planner.specs import Accelerator, ModelSpec

ROOT = Path(__file__).resolve().parent.parent
HW_DIR = ROOT / "hw_specs"
DATA_DIR = ROOT / "data"
MODELS_DIR = DATA_DIR / "models"
CALIBRATION_FILE = DATA_DIR / "calibration" / "efficiency.yaml"
SPECS_ENV = "RADPLAN_SPECS_DIR"

_extra_dirs: list[Path] = []


def add_specs_dir(path: str | Path) -> None:
    """Add a folder of accelerator YAML files (what ``--specs-dir`` does)."""
    p = Path(path)
    if not p.is_dir():
        raise SpecFileError(f"--specs-dir '{p}' is not a folder")
    if p not in _extra_dirs:
        _extra_dirs.append(p)
    _load_accelerators.cache_clear()


def _spec_dirs() -> tuple[Path, ...]:
    env = [Path(d) for d in os.environ.get(SPECS_ENV, "").split(os.pathsep) if d]
    for d in env:
        if not d.is_dir():
            raise SpecFileError(f"{SPECS_ENV} names '{d}', which is not a folder")
    return (HW_DIR, *env, *_extra_dirs)


def read_yaml(path: Path) -> dict:
    """Safe-load one YAML mapping; a syntax error names the file and line."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise SpecFileError(f"{path}:{where} is not valid YAML ({getattr(e, 'problem', e)})") from None
    except OSError as e:
        raise SpecFileError(f"{path}: cannot read ({e.strerror})") from None
    if not isinstance(data, dict):
        raise SpecFileError(f"{path}: expected a mapping of fields, got {type(data).__name__}")
    return data


def parse_accelerator(data: dict, origin: str) -> Accelerator:
    try:
        acc = Accelerator.model_validate(data)
    except ValidationError as e:
        raise SpecFileError(format_validation_error(origin, e)) from None
    stem = Path(origin).stem
    if origin.endswith((".yaml", ".yml")) and acc.id != stem:
        raise SpecFileError(f"{origin}: field 'id' = '{acc.id}' must equal the file name stem '{stem}'")
    return acc


@functools.lru_cache(maxsize=8)
def _load_accelerators(dirs: tuple[Path, ...]) -> dict[str, Accelerator]:
    out: dict[str, Accelerator] = {}
    for d in dirs:
        for f in sorted(d.glob("*.y*ml")):
            out[f.stem] = parse_accelerator(read_yaml(f), str(f))
    return out


_session_accs: dict[str, Accelerator] = {}


def register_accelerator(acc: Accelerator) -> None:
    """Add an accelerator for this process only (a dashboard upload, a measured device profile)."""
    _session_accs[acc.id] = acc


def unregister_accelerator(acc_id: str) -> None:
    _session_accs.pop(acc_id, None)


def accelerators() -> dict[str, Accelerator]:
    return {**_load_accelerators(_spec_dirs()), **_session_accs}


def list_gpus() -> list[str]:
    return sorted(accelerators())


def load_gpu(gpu_id: str) -> Accelerator:
    accs = accelerators()
    if gpu_id not in accs:
        raise UnknownIdError("GPU id", gpu_id, list(accs))
    return accs[gpu_id]


@functools.lru_cache(maxsize=1)
def _load_models() -> dict[str, ModelSpec]:
    out = {}
    for f in sorted(MODELS_DIR.glob("*.yaml")):
        try:
            m = ModelSpec.model_validate(read_yaml(f))
        except ValidationError as e:
            raise SpecFileError(format_validation_error(str(f), e)) from None
        if m.id != f.stem:
            raise SpecFileError(f"{f}: field 'id' = '{m.id}' must equal the file name stem '{f.stem}'")
        out[m.id] = m
    for m in out.values():   # a pipeline must name models that exist
        a = m.arch
        if a.kind == "pipeline":
            for ref in (a.vision, a.llm):
                if ref not in out:
                    raise SpecFileError(f"{MODELS_DIR / (m.id + '.yaml')}: pipeline names unknown model '{ref}'")
    return out


def models() -> dict[str, ModelSpec]:
    return _load_models()


def list_models() -> list[str]:
    return sorted(_load_models())


def load_model(model_id: str) -> ModelSpec:
    ms = _load_models()
    if model_id not in ms:
        raise UnknownIdError("model id", model_id, list(ms))
    return ms[model_id]


_calibration_override = []


def load_calibration():
    """Fitted efficiency factors (see benchmarks/fit_efficiency.py), validated in planner.efficiency."""
    if _calibration_override:
        return _calibration_override[-1]
    return _read_calibration(CALIBRATION_FILE)


@functools.lru_cache(maxsize=4)
def _read_calibration(path: Path):
    from planner.efficiency import Calibration
    try:
        return Calibration.model_validate(read_yaml(path))
    except ValidationError as e:
        raise SpecFileError(format_validation_error(str(path), e)) from None


class use_calibration:
    """Context manager: evaluate with another Calibration (the fit script tries candidates this way)."""
    def __init__(self, cal):
        self.cal = cal

    def __enter__(self):
        _calibration_override.append(self.cal)
        return self.cal

    def __exit__(self, *exc):
        _calibration_override.pop()


def write_yaml_atomic(path: Path, data: dict, header: str = "") -> None:
    """Write a YAML file so that a crash leaves either the old or the new file, never half of one."""
    import tempfile
    path = Path(path)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp", encoding="utf-8") as f:
        f.write(header)
        yaml.safe_dump(data, f, sort_keys=False, width=110)
        tmp = f.name
    os.replace(tmp, path)


# --------------------------------------------------------------------------------------------- workloads
# Radiology workload presets (data/workloads/*.yaml) and department files (data/departments/*.yaml); the
# schemas are in planner/workload_specs.py.

WORKLOADS_DIR = DATA_DIR / "workloads"
DEPARTMENTS_DIR = DATA_DIR / "departments"


def list_workloads() -> list[str]:
    """Ids of the shipped workload presets (file stems)."""
    return sorted(f.stem for f in WORKLOADS_DIR.glob("*.yaml"))


def _looks_like_path(ref) -> bool:
    s = str(ref)
    return isinstance(ref, Path) or s.endswith((".yaml", ".yml")) or os.sep in s or "/" in s


def parse_workload(data: dict, origin: str):
    """Validate a workload mapping and check it against the model catalog (model id, tokens vs images)."""
    from planner.workload_specs import Workload
    try:
        w = Workload.model_validate(data)
    except ValidationError as e:
        raise SpecFileError(format_validation_error(origin, e)) from None
    if w.plannable:
        _check_workload_model(w, origin)
    return w


def _check_workload_model(w, origin: str) -> None:
    ms = _load_models()
    if w.model not in ms:
        err = UnknownIdError("model id", w.model, list(ms))
        raise SpecFileError(f"{origin}: field 'model' = '{w.model}': {err}") from None
    cat = ms[w.model].category
    if cat in ("llm", "pipeline"):
        missing = [k for k in ("input_tokens", "output_tokens") if getattr(w, k) is None]
        if missing:
            raise SpecFileError(f"{origin}: model '{w.model}' is a {cat}: field '{missing[0]}' is required")
        if cat == "pipeline" and w.images_per_study is None:
            raise SpecFileError(f"{origin}: model '{w.model}' is a pipeline: field 'images_per_study' is required")
    else:
        if w.images_per_study is None:
            raise SpecFileError(f"{origin}: model '{w.model}' is a vision model: field 'images_per_study' is required")
        extra = [k for k in ("input_tokens", "output_tokens") if getattr(w, k) is not None]
        if extra or w.calls_per_study != 1:
            bad = extra[0] if extra else "calls_per_study"
            raise SpecFileError(f"{origin}: field '{bad}' applies to LLMs, but '{w.model}' is a vision model")


def load_workload(ref):
    """A workload preset by id (``planner workloads``), or a workload YAML file by path."""
    if _looks_like_path(ref):
        path = Path(ref)
        if not path.is_file():
            raise SpecFileError(f"workload file '{path}' does not exist")
        data = read_yaml(path)
        if "workloads" in data:
            raise SpecFileError(f"{path}: is a department file (it has 'workloads'); use load_department")
        return parse_workload(data, str(path))
    ids = list_workloads()
    if ref not in ids:
        raise UnknownIdError("workload preset", str(ref), ids)
    path = WORKLOADS_DIR / f"{ref}.yaml"
    w = parse_workload(read_yaml(path), str(path))
    if w.id != path.stem:
        raise SpecFileError(f"{path}: field 'id' = '{w.id}' must equal the file name stem '{path.stem}'")
    return w


def list_departments() -> list[str]:
    return sorted(f.stem for f in DEPARTMENTS_DIR.glob("*.yaml"))


def load_department(ref):
    """A department file (path, or the id of one in data/departments/) with its workloads resolved and
    scaled: factor = the entry's ``daily_volume`` / ``scale`` if given, else annual_exams / the workload's
    reference_annual_exams, else 1."""
    from planner.workload_specs import Department, DepartmentFile
    path = Path(ref) if _looks_like_path(ref) else DEPARTMENTS_DIR / f"{ref}.yaml"
    if not path.is_file():
        if _looks_like_path(ref):
            raise SpecFileError(f"department file '{path}' does not exist")
        raise UnknownIdError("department", str(ref), list_departments())
    try:
        d = DepartmentFile.model_validate(read_yaml(path))
    except ValidationError as e:
        raise SpecFileError(format_validation_error(str(path), e)) from None
    workloads, scales = [], []
    for k, entry in enumerate(d.workloads):
        where = f"{path}: workloads.{k}"
        if entry.preset is not None:
            try:
                w = load_workload(entry.preset)
            except UnknownIdError as e:
                raise SpecFileError(f"{where}.preset: {e}") from None
        else:
            w = entry.workload
            if w.plannable:
                _check_workload_model(w, f"{where}.workload")
        factor = _department_scale(entry, w, d.annual_exams, where)
        workloads.append(w.scaled(factor) if factor != 1 else w)
        scales.append(factor)
    ids = [w.id for w in workloads]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise SpecFileError(f"{path}: workload '{dup[0]}' appears twice; each workload may appear once")
    return Department(id=d.id, name=d.name, annual_exams=d.annual_exams, workloads=tuple(workloads),
                      scales=tuple(scales), sources=d.sources, notes=d.notes)


def _department_scale(entry, w, annual_exams, where: str) -> float:
    if entry.daily_volume is not None:
        if w.arrivals.kind != "poisson":
            raise SpecFileError(f"{where}.daily_volume: workload '{w.id}' is a batch job; use 'scale'")
        return entry.daily_volume / w.arrivals.daily_volume
    if entry.scale is not None:
        return entry.scale
    if annual_exams is None:
        return 1.0
    if w.reference_annual_exams is None:
        raise SpecFileError(f"{where}: workload '{w.id}' has no reference_annual_exams, so annual_exams cannot "
                            f"scale it; give 'scale' or 'daily_volume' for this entry")
    return annual_exams / w.reference_annual_exams


def load_workload_or_department(ref):
    """A preset id, a workload file or a department file (one with 'workloads'), whichever ``ref`` names."""
    if _looks_like_path(ref):
        path = Path(ref)
        if not path.is_file():
            raise SpecFileError(f"file '{path}' does not exist")
        return load_department(path) if "workloads" in read_yaml(path) else load_workload(path)
    if ref in list_departments() and ref not in list_workloads():
        return load_department(ref)
    return load_workload(ref)
