"""Uploaded files: size-limited, safe-loaded YAML, turned into validated objects or one-line PlannerErrors.

Pure (no streamlit) so that the limits and messages are unit-tested. The server also caps uploads
(``server.maxUploadSize`` in .streamlit/config.toml); the limit here is the tighter one for spec files.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import yaml

from planner import catalog
from planner.errors import PlannerError

MAX_UPLOAD_BYTES = 256 * 1024
MAX_NODES = 20_000      # mappings, lists and scalars after alias expansion ("billion laughs" guard)


def _count_nodes(obj, budget: int) -> int:
    stack, n = [obj], 0
    while stack:
        x = stack.pop()
        n += 1
        if n > budget:
            return n
        if isinstance(x, dict):
            stack.extend(x.keys())
            stack.extend(x.values())
        elif isinstance(x, (list, tuple)):
            stack.extend(x)
    return n


def load_yaml_bytes(data: bytes, name: str) -> dict:
    """Bytes of an uploaded file -> a mapping, or PlannerError naming the file and what is wrong."""
    if len(data) > MAX_UPLOAD_BYTES:
        raise PlannerError(f"{name}: {len(data) / 1024:.0f} KiB is over the {MAX_UPLOAD_BYTES // 1024} KiB limit "
                           "for an uploaded YAML file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise PlannerError(f"{name}: not UTF-8 text (expected a YAML file)") from None
    try:
        obj = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}:" if mark else ""
        raise PlannerError(f"{name}:{where} not valid YAML ({getattr(e, 'problem', None) or e})") from None
    if not isinstance(obj, dict):
        raise PlannerError(f"{name}: expected a mapping of fields at the top level, got {type(obj).__name__}")
    if _count_nodes(obj, MAX_NODES) > MAX_NODES:
        raise PlannerError(f"{name}: more than {MAX_NODES} values after expanding aliases; refused")
    return obj


def parse_accelerator_upload(data: bytes, name: str):
    """An uploaded accelerator spec -> Accelerator (same schema and rules as hw_specs/*.yaml)."""
    name = Path(name).name
    return catalog.parse_accelerator(load_yaml_bytes(data, name), name)


def parse_department_upload(data: bytes, name: str):
    """An uploaded department file -> whatever ``catalog.load_department`` returns. The bytes are checked
    here first (size, safe YAML), then written to a private temporary file for the catalog to read."""
    name = Path(name).name or "department.yaml"
    load_yaml_bytes(data, name)
    load_department = getattr(catalog, "load_department", None)
    if load_department is None:
        raise PlannerError("department files need planner.catalog.load_department (capacity planning, issue 4), "
                           "which is not in this version yet")
    with tempfile.TemporaryDirectory(prefix="radplan-upload-") as d:
        path = Path(d) / name
        path.write_bytes(data)
        try:
            return load_department(path)
        except PlannerError as e:     # name the upload, not our temporary folder
            raise PlannerError(str(e).replace(str(path), name).replace(d, "")) from None
