"""Service tables: one replica of a model as arrays indexed by batch size, precomputed once from the core model
(planner.predict.evaluate is vectorised over batch sizes) so that the serving simulation only looks numbers up.

An LLM or vision-language pipeline gets prefill, vision-encoder and decode-step tables for continuous batching;
a vision model gets one table of static-batch times. The decode step is linear in the context (attention reads
C tokens of KV per sequence), so its table holds a + b * C per batch size B (see _decode_tables).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np

from planner.errors import PlannerError, check_positive_int

DEFAULT_MAX_SEQS = 256          # vLLM EngineArgs max_num_seqs default
DEFAULT_TOKEN_BUDGET = 8192     # assumption: prompt tokens per prefill iteration (vLLM max_num_batched_tokens scale)
DEFAULT_VISION_MAX_BATCH = 32   # assumption: images per static batch of a vision model
DEFAULT_MAX_WAIT_S = 0.02       # assumption: dynamic-batcher queue delay (Triton max_queue_delay)


@dataclass(frozen=True)
class LlmService:
    """One replica of an LLM or pipeline, as tables indexed by batch size (seconds and joules, whole replica)."""
    max_seqs: int                  # requests in flight
    max_prefill: int               # requests per prefill iteration (token budget / prompt, at least 1)
    prompt_tokens: int             # context per sequence after prefill (text + image tokens)
    output_tokens: int
    prefill_s: np.ndarray          # [k] prefill of k requests
    prefill_j: np.ndarray
    vision_s: np.ndarray | None    # [n] vision encoder (+ projector) over n images
    vision_j: np.ndarray | None
    step_s: np.ndarray             # [B, 2]: decode step = step_s[B, 0] + step_s[B, 1] * mean context
    step_j: np.ndarray
    idle_w: float                  # idle power of the replica's GPUs
    gpus: int = 1                  # GPUs per replica (tp)


@dataclass(frozen=True)
class StaticService:
    """One replica of a vision model with static batching; ``sampler(n, rng)`` draws random service times
    instead of the table (queueing-theory tests)."""
    max_batch: int
    max_wait_s: float
    service_s: np.ndarray          # [n] one batch of n images
    service_j: np.ndarray
    idle_w: float
    sampler: Callable | None = None
    gpus: int = 1


def _limit(name: str, value, default):
    return default if value is None else check_positive_int(name, value)


def build_service(w, gpu: str, precision: str, tp: int = 1, max_batch: int | None = None,
                  token_budget: int | None = None, max_wait_s: float | None = None, engine: str = "optimized"):
    """One replica's service tables for workload ``w`` from the core model, evaluated once over every batch
    size the engine can form (planner.predict.evaluate is vectorised). Returns (service, info)."""
    from planner import catalog
    from planner.api import _engine, model_plan
    from planner.parallel import check_parallel
    from planner.predict import evaluate
    from planner.quant import check_supported, load_precision
    acc = catalog.load_gpu(gpu)
    p = load_precision(precision)
    check_supported(acc, p)
    check_parallel(acc, tp, 1)
    eng, cal = _engine(engine), catalog.load_calibration()
    plan = model_plan(w.model, p.id)
    if plan.vision_precision is not None:
        check_supported(acc, plan.vision_precision)
    table, vtable = gpu_tables([acc], plan, p, cal)
    idle = acc.power.idle_w * tp

    def ev(pl, b, i, o):
        with np.errstate(all="ignore"):
            return {k: np.asarray(v, dtype=float) for k, v in evaluate(pl, table, vtable, 0, b, i, o, tp, 1, eng,
                                                                       cal).items()}

    if plan.decode is None:
        return _vision_service(w, plan, acc, precision, tp, ev, idle, max_batch, max_wait_s)
    return _llm_service(w, plan, catalog.load_model(w.model), acc, precision, tp, ev, idle, max_batch,
                        token_budget, engine)


def gpu_tables(accs, plan, p, cal):
    """(hardware table at precision ``p``, table at the vision encoder's own precision or None) for a
    compiled model ``plan``: the inputs planner.predict.evaluate() takes."""
    from planner.predict import gpu_table
    table = gpu_table(accs, p, cal)
    vtable = gpu_table(accs, plan.vision_precision, cal) if plan.vision_precision is not None else None
    return table, vtable


def _llm_service(w, plan, spec, acc, precision, tp, ev, idle, max_batch, token_budget, engine):
    """Continuous-batching tables: prefill of k requests, vision encoder over n images, decode step of B."""
    prompt, i_eff, study_img = prompt_lengths(w, plan, spec)
    o = w.output_tokens
    full = ev(plan, 1, i_eff, o)
    _check_fits(full, w, acc, precision, tp)
    max_seqs = min(_limit("max_batch", max_batch, DEFAULT_MAX_SEQS), int(full["max_batch"]))
    if max_seqs < 1:
        raise PlannerError(f"{w.model} at {precision} on {tp} x {acc.id}: not even one request of {prompt + o} "
                           f"tokens fits next to the weights; raise tp or quantize")
    budget = _limit("token_budget", token_budget, DEFAULT_TOKEN_BUDGET)
    max_prefill = max(1, min(max_seqs, budget // prompt))
    text = replace(plan, vision=None)
    pre = ev(text, np.arange(1, max_prefill + 1), i_eff, 1)
    step_s, step_j = _decode_tables(ev, text, max_seqs, i_eff, o)
    vis_s = vis_j = None
    if plan.vision is not None:
        vis = replace(plan, prefill=None, decode=None, decode_static=None, decode_ctx=None)
        n = np.arange(1, max_prefill * math.ceil(w.images_per_study) + 1)
        rv = ev(vis, n / plan.images_per_request, 0, 0)
        vis_s, vis_j = np.concatenate([[0.0], rv["latency_s"]]), np.concatenate([[0.0], rv["energy_j"]])
    svc = LlmService(max_seqs, max_prefill, prompt, o, np.concatenate([[0.0], pre["ttft_s"]]),
                     np.concatenate([[0.0], pre["energy_j"]]), vis_s, vis_j, step_s, step_j, idle, tp)
    info = {"engine_kind": "continuous-batching", "max_seqs": max_seqs, "token_budget": budget,
            "max_prefill_requests": max_prefill, "prompt_tokens": prompt, "image_tokens": study_img,
            "output_tokens": o, "beams": plan.beams, "memory_gb_per_gpu": float(full["memory_gb_per_gpu"]),
            "memory_max_seqs": int(full["max_batch"]), "single_request_latency_s": float(full["e2e_s"]),
            "memory_gb_at_max_batch": float(ev(plan, max_seqs, i_eff, o)["memory_gb_per_gpu"]), "engine": engine}
    return svc, info


def prompt_lengths(w, plan, spec) -> tuple[int, int, int]:
    """(prompt tokens per call incl. the study's image tokens, the text length evaluate() needs to reach that
    prompt with the model's own image count, image tokens). R2GenGPT averages its views, so its 49 tokens
    do not grow with the images; other pipelines add tokens per image."""
    study_img = 0
    if plan.category == "pipeline":
        a = spec.arch
        study_img = a.image_tokens_per_image * (1 if a.average_views else max(1, round(w.images_per_study)))
    prompt = w.input_tokens + study_img
    return prompt, prompt - plan.image_tokens, study_img


def _decode_tables(ev, text_plan, max_seqs: int, i_eff: float, o: int):
    """Decode-step time and energy for B = 1..max_seqs requests as a + b * (mean context): evaluate() at the
    first and the last step's context; a step at context C is evaluated as a 1-step decode after C - 1 tokens."""
    B = np.arange(1, max_seqs + 1)
    c1, c2 = 1.0, float(max(o - 1, 1))          # offsets of the first and last decode step's context
    rows = []
    for c in (c1, c2):
        two, one = ev(text_plan, B, i_eff + c - 1, 2), ev(text_plan, B, i_eff + c - 1, 1)
        rows.append((two["tpot_s"], two["energy_j"] - one["energy_j"]))
    ctx1, ctx2 = i_eff + text_plan.image_tokens + c1, i_eff + text_plan.image_tokens + c2
    out = []
    for k in (0, 1):
        y1, y2 = rows[0][k], rows[1][k]
        slope = (y2 - y1) / (ctx2 - ctx1) if ctx2 > ctx1 else np.zeros_like(y1)
        tab = np.zeros((max_seqs + 1, 2))
        tab[1:, 0], tab[1:, 1] = y1 - slope * ctx1, slope
        out.append(tab)
    return out


def _vision_service(w, plan, acc, precision, tp, ev, idle, max_batch, max_wait_s):
    one = ev(plan, 1, 0, 0)
    _check_fits(one, w, acc, precision, tp)
    cap = min(_limit("max_batch", max_batch, DEFAULT_VISION_MAX_BATCH), max(1, int(one["max_batch"])))
    wait = DEFAULT_MAX_WAIT_S if max_wait_s is None else max_wait_s
    if not (isinstance(wait, (int, float)) and math.isfinite(wait) and wait >= 0):
        raise PlannerError(f"max_wait_s must be a non-negative number of seconds, got {max_wait_s!r}")
    r = ev(plan, np.arange(1, cap + 1), 0, 0)
    svc = StaticService(cap, float(wait), np.concatenate([[0.0], r["latency_s"]]),
                        np.concatenate([[0.0], r["energy_j"]]), idle, gpus=tp)
    info = {"engine_kind": "static-batching", "max_batch": cap, "max_wait_s": float(wait),
            "memory_gb_per_gpu": float(one["memory_gb_per_gpu"]), "single_request_latency_s":
            float(one["latency_s"] * math.ceil(w.images_per_study)),
            "memory_gb_at_max_batch": float(ev(plan, cap, 0, 0)["memory_gb_per_gpu"])}
    return svc, info


def _check_fits(r: dict, w, acc, precision: str, tp: int) -> None:
    if not bool(r["supported"]):
        raise PlannerError(f"{precision} on {acc.id} with tp {tp} is not supported")
    if not bool(r["fits"]):
        raise PlannerError(f"{w.model} at {precision} does not fit on {tp} x {acc.id}: needs "
                           f"{float(r['memory_gb_per_gpu']):.1f} GB per GPU, {acc.id} has "
                           f"{acc.memory.capacity_gb:g} GB; raise tp or quantize")
