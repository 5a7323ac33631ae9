"""Memory per GPU: weights + KV cache + activations + runtime reserve -> fits, largest batch and context.

All inputs are numbers or numpy arrays (the sweep passes arrays); nothing here reads files.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class MemoryNeed:
    """What one replica needs, before sharding. Bytes, as arrays or floats."""
    weights: object             # all weights (all MoE experts)
    kv_per_seq_token: float     # KV bytes per sequence per token of context (0 for vision models)
    act_per_token: float        # peak live activation bytes per token of one forward (prefill)
    act_per_seq: float = 0.0    # per-sequence activation bytes (fp32 logits of the last position)


def memory_per_gpu(need: MemoryNeed, sequences, context, prefill_tokens, tp, pp, reserve_fixed, reserve_frac,
                   capacity):
    """Bytes per GPU and their parts. Weights and KV shard over tp*pp; activations over tp (each pipeline
    stage holds its own micro-batch's activations, so pp does not divide them)."""
    shards = np.asarray(tp, dtype=float) * np.asarray(pp, dtype=float)
    weights = need.weights / shards
    kv = need.kv_per_seq_token * np.asarray(sequences) * np.asarray(context) / shards
    act = (need.act_per_token * np.asarray(prefill_tokens) + need.act_per_seq * np.asarray(sequences)) \
        / np.asarray(tp, dtype=float)
    reserve = reserve_fixed + reserve_frac * np.asarray(capacity)
    return {"weights": weights, "kv_cache": kv, "activations": act, "reserve": reserve,
            "total": weights + kv + act + reserve}


def largest_batch(need: MemoryNeed, context, prefill_tokens_per_seq, tp, pp, reserve_fixed, reserve_frac, capacity):
    """Largest number of sequences that fits (0 if not even one does)."""
    shards = tp * pp
    free = capacity - reserve_fixed - reserve_frac * capacity - need.weights / shards
    per_seq = (need.kv_per_seq_token * context / shards
               + (need.act_per_token * prefill_tokens_per_seq + need.act_per_seq) / tp)
    with np.errstate(divide="ignore", invalid="ignore"):
        n = np.where(per_seq > 0, np.floor(free / per_seq), np.where(free >= 0, 1e9, 0))
    return np.maximum(n, 0)


def largest_context(need: MemoryNeed, sequences, tp, pp, reserve_fixed, reserve_frac, capacity, prefill_cap=4096):
    """Longest context (tokens) per sequence that fits at this batch; prefill is chunked at ``prefill_cap``."""
    shards = tp * pp
    free = (capacity - reserve_fixed - reserve_frac * capacity - need.weights / shards
            - (need.act_per_token * prefill_cap + need.act_per_seq) * sequences / tp)
    per_tok = need.kv_per_seq_token * sequences / shards
    with np.errstate(divide="ignore", invalid="ignore"):
        n = np.where(per_tok > 0, np.floor(free / per_tok), 0)
    return np.maximum(n, 0)
