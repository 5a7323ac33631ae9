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
