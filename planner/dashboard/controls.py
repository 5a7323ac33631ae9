"""Widgets several pages share: model with its token lengths, accelerators, precision. All URL-bound."""
from __future__ import annotations

import streamlit as st

import planner
from planner.api import DEFAULT_INPUT_LEN, DEFAULT_OUTPUT_LEN, model_plan
from planner.dashboard import loaders, state
from planner.quant import PRECISIONS

TPS = [1, 2, 4, 8]


def _default_lengths(model: str) -> tuple[int, int]:
    p = model_plan(model, "bf16")
    return (p.default_input_len or DEFAULT_INPUT_LEN), (p.default_output_len or DEFAULT_OUTPUT_LEN)


def _reset_lengths() -> None:
    """A new model starts from its own default prompt and output lengths."""
    for k in ("qp_in", "qp_out"):
        st.session_state.pop(k, None)
        st.query_params.pop(k[3:], None)


def model_and_lengths(container, default_model: str = "llama-3-8b") -> tuple[str, dict, int | None, int | None]:
    """Model select plus input/output token inputs (hidden for image models, which have no tokens)."""
    model = state.select("Model", planner.list_models(), "model", default_model, container=container,
                         on_change=_reset_lengths)
    info = loaders.model_info(model)
    if not info["decoder"]:
        container.caption(f"{info['name']}: image model ({info['params_b']:.3g} B parameters); no token lengths.")
        return model, info, None, None
    din, dout = _default_lengths(model)
    i = state.number("Input tokens (prompt; pipelines add image tokens)", "in", din, max_value=131072,
                     container=container)
    o = state.number("Output tokens", "out", dout, max_value=32768, container=container)
    return model, info, i, o


def precision(container, default: str = "bf16", param: str = "precision") -> str:
    return state.select("Precision", list(PRECISIONS), param, default, container=container,
                        format_func=lambda p: p, help="; ".join(f"{p.id}: {p.description}" for p in PRECISIONS.values()))


def batch(container, default: int = 8, param: str = "batch", label: str = "Batch (requests in flight)") -> int:
    return state.choice_slider(label, loaders.BATCHES, param, default, container=container)


def tp(container, default: int = 1) -> int:
    return state.select("Tensor-parallel GPUs (tp)", TPS, "tp", default, container=container)
