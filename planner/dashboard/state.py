"""Shareable state and session-only accelerators.

Every main choice of a page is a widget bound to a URL query parameter: the first run of a browser session
reads the URL, every run writes the current value back, so copying the address reproduces the view.
Lists go into one comma-separated parameter (``gpus=h100-sxm,l40s``).

Accelerators uploaded on the Hardware page are registered with ``planner.catalog.register_accelerator``
(process-wide), but each is owned by the browser session that uploaded it: other sessions neither list it
nor may replace it, and an upload may not shadow a shipped id, so other sessions' numbers never change.
"""
from __future__ import annotations

import hashlib
import threading
import uuid
from typing import Callable, Iterable, Sequence

import streamlit as st

from planner import catalog
from planner.errors import PlannerError

# ------------------------------------------------------------------------------------ query-parameter widgets


def _initial(key: str, param: str, parse: Callable, valid: Callable, default):
    """Seed a widget's state from the URL on its first run in this session, or repair a stale value.
    A value already chosen is written back through the Session State API: widget ids differ between pages,
    and this is what carries a choice (the model, the accelerators) from one page to the next."""
    if key in st.session_state and valid(st.session_state[key]):
        st.session_state[key] = st.session_state[key]
        return
    raw = st.query_params.get(param)
    value = None
    if raw is not None:
        try:
            value = parse(raw)
        except (TypeError, ValueError):
            value = None
    st.session_state[key] = value if value is not None and valid(value) else default


def select(label: str, options: Sequence, param: str, default=None, *, key: str | None = None, container=None,
           widget: str = "selectbox", **kw):
    """A selectbox (or ``widget="radio"``) mirrored in ``?param=value``."""
    options = list(options)
    default = default if default in options else options[0]
    key = key or f"qp_{param}"
    by_str = {str(o): o for o in options}
    _initial(key, param, lambda s: by_str.get(s), lambda v: v in options, default)
    value = getattr(container or st, widget)(label, options, key=key, **kw)
    st.query_params[param] = str(value)
    return value


def multiselect(label: str, options: Sequence[str], param: str, default: Iterable[str], *, key: str | None = None,
                container=None, **kw) -> list[str]:
    """A multiselect mirrored in ``?param=a,b,c``."""
    options = list(options)
    default = [d for d in default if d in options]
    key = key or f"qp_{param}"

    most = kw.get("max_selections") or len(options)
    default = default[:most]

    def parse(s):
        return [x for x in s.split(",") if x in options][:most] or None

    def valid(v):       # the key is shared with other pages' widgets of the same choice, which may allow more
        return isinstance(v, list) and len(v) <= most and all(x in options for x in v)
    _initial(key, param, parse, valid, default)
    value = (container or st).multiselect(label, options, key=key, **kw)
    st.query_params[param] = ",".join(value)
    return value


def number(label: str, param: str, default: int, *, min_value: int = 1, max_value: int = 1_000_000,
           key: str | None = None, container=None, **kw) -> int:
    """An integer number_input mirrored in ``?param=N``."""
    key = key or f"qp_{param}"
    _initial(key, param, int, lambda v: isinstance(v, int) and min_value <= v <= max_value, default)
    value = (container or st).number_input(label, min_value=min_value, max_value=max_value, step=1, key=key, **kw)
    st.query_params[param] = str(int(value))
    return int(value)


def choice_slider(label: str, options: Sequence[int], param: str, default: int, *, key: str | None = None,
                  container=None, **kw) -> int:
    """A select_slider over integer options (batch sizes) mirrored in ``?param=N``."""
    options = list(options)
    default = default if default in options else options[0]
    key = key or f"qp_{param}"
    _initial(key, param, int, lambda v: v in options, default)
    value = (container or st).select_slider(label, options=options, key=key, **kw)
    st.query_params[param] = str(value)
    return value


def flt(label: str, param: str, default: float, *, min_value: float, max_value: float, step: float,
        key: str | None = None, container=None, **kw) -> float:
    """A float number_input mirrored in ``?param=x``."""
    key = key or f"qp_{param}"
    _initial(key, param, float, lambda v: isinstance(v, float) and min_value <= v <= max_value, float(default))
    value = (container or st).number_input(label, min_value=float(min_value), max_value=float(max_value),
                                           step=float(step), key=key, **kw)
    st.query_params[param] = f"{value:g}"
    return float(value)


def engine() -> str:
    """The serving-engine profile chosen in the shared sidebar."""
    return st.session_state.get("qp_engine", "optimized")


# ------------------------------------------------------------------------------------ session accelerators

_lock = threading.Lock()
_owner: dict[str, str] = {}          # uploaded accelerator id -> owning browser session token


def _token() -> str:
    if "session_token" not in st.session_state:
        st.session_state["session_token"] = uuid.uuid4().hex
    return st.session_state["session_token"]


def _uploads() -> dict:
    return st.session_state.setdefault("uploaded_accelerators", {})


def visible_gpus() -> list[str]:
    """Shipped accelerators plus this session's uploads (never another session's)."""
    me = _token()
    return [g for g in catalog.list_gpus() if _owner.get(g, me) == me]


def shipped_gpus() -> list[str]:
    return [g for g in catalog.list_gpus() if g not in _owner]


def add_accelerator(acc) -> None:
    """Register an uploaded accelerator for this browser session; PlannerError if its id is taken."""
    me = _token()
    with _lock:
        if acc.id in _owner and _owner[acc.id] != me:
            raise PlannerError(f"field 'id' = '{acc.id}' is in use by another browser session; choose another id")
        if acc.id not in _owner and acc.id in catalog.list_gpus():
            raise PlannerError(f"field 'id' = '{acc.id}' is a shipped accelerator; give your file another id "
                               f"(and a file name to match) to compare them side by side")
        _owner[acc.id] = me
        catalog.register_accelerator(acc)
    _uploads()[acc.id] = acc


def remove_accelerator(acc_id: str) -> None:
    me = _token()
    with _lock:
        if _owner.get(acc_id) == me:
            catalog.unregister_accelerator(acc_id)
            del _owner[acc_id]
    _uploads().pop(acc_id, None)


def uploaded_ids() -> list[str]:
    return sorted(_uploads())


def specs_fingerprint() -> str:
    """Part of every cache key: changes when this session's uploaded specs change."""
    ups = _uploads()
    if not ups:
        return ""
    text = "|".join(f"{k}:{ups[k].model_dump_json()}" for k in sorted(ups))
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def restore_accelerators() -> None:
    """Re-register this session's uploads (after another session's removal or a module reload)."""
    me = _token()
    with _lock:
        for acc_id, acc in _uploads().items():
            if _owner.get(acc_id, me) == me:
                _owner[acc_id] = me
                catalog.register_accelerator(acc)
