"""Parameter counts from architecture fields, checked in tests against published counts (within 2 %)."""
from __future__ import annotations

from planner.specs import CnnArch, DecoderArch, ModelSpec, PipelineArch, Projector, SwinArch, Unet3dArch, VitArch


def _norm_params(d: int, kind: str) -> int:
    return d if kind == "rmsnorm" else 2 * d


def decoder_layer_params(a: DecoderArch, experts: int | None = None) -> dict[str, int]:
    """Parameters of one decoder layer by part. ``experts`` overrides how many MoE experts to count."""
    hd, d = a.hd, a.d_model
    q, kv = a.n_heads * hd, a.n_kv_heads * hd
    attn = d * (q + 2 * kv) + q * d + (q + 2 * kv + d if a.bias else 0)
    mlp_one = (3 if a.gated_mlp else 2) * d * a.d_ff + ((a.d_ff + d) if a.bias and not a.gated_mlp else 0)
    n_exp = 1 if a.moe is None else (a.moe.n_experts if experts is None else experts)
    router = 0 if a.moe is None else d * a.moe.n_experts
    norms = (1 if a.parallel_attn_mlp else 2) * _norm_params(d, a.norm)
    return {"attn": attn, "mlp": mlp_one * n_exp + router, "norm": norms}


def decoder_params(a: DecoderArch, experts: int | None = None) -> int:
    layer = sum(decoder_layer_params(a, experts).values())
    emb = a.vocab_size * a.d_model
    head = 0 if a.tied_embeddings else a.vocab_size * a.d_model + (a.vocab_size if a.bias else 0)
    pos = a.max_context * a.d_model if a.position == "learned" else 0
    emb_norm = _norm_params(a.d_model, a.norm) if a.position == "alibi" else 0  # BLOOM's word_embeddings_layernorm
    return a.n_layers * layer + emb + head + pos + emb_norm + _norm_params(a.d_model, a.norm)


def vit_tokens(a: VitArch) -> int:
    return (a.image_size // a.patch_size) ** 2 + (1 if a.cls_token else 0) + a.register_tokens


def vit_params(a: VitArch) -> int:
    d = a.d_model
    patch = a.channels * a.patch_size ** 2 * d + d
    n_pos = (a.image_size // a.patch_size) ** 2 + (1 if a.cls_token else 0)
    pos = n_pos * d + (d if a.cls_token else 0) + a.register_tokens * d   # position table, cls, registers
    mlp = (3 if a.gated_mlp else 2) * d * a.d_ff + a.d_ff + d
    layer = 4 * d * d + 4 * d + mlp + 2 * 2 * d
    head = a.n_classes * d + a.n_classes if a.n_classes else 0
    return patch + pos + a.n_layers * layer + 2 * d + head


def swin_params(a: SwinArch) -> int:
    c = a.embed_dim
    total = a.channels * a.patch_size ** 2 * c + c + 2 * c          # patch embed conv + its LayerNorm
    for i, (depth, heads) in enumerate(zip(a.depths, a.heads)):
        hidden = int(c * a.mlp_ratio)
        rel_bias = (2 * a.window - 1) ** 2 * heads
        block = 4 * c * c + 4 * c + rel_bias + 2 * c * hidden + hidden + c + 2 * 2 * c
        total += depth * block
        if i < len(a.depths) - 1:                                  # patch merging: LN(4c) + Linear(4c -> 2c)
            total += 2 * 4 * c + 4 * c * 2 * c
            c *= 2
    head = a.n_classes * c + a.n_classes if a.n_classes else 0
    return total + 2 * c + head


def projector_params(p: Projector) -> int:
    if p.params is not None:
        return int(p.params)
    if p.kind == "linear":
        return p.in_dim * p.out_dim + p.out_dim
    hidden = p.hidden_dim or p.out_dim
    dims = [p.in_dim] + [hidden] * (p.n_layers - 1) + [p.out_dim]
    return sum(i * o + o for i, o in zip(dims[:-1], dims[1:]))


def _resolve(model_id: str) -> ModelSpec:
    from planner import catalog   # pipelines name other catalog entries; the lookup is the only I/O
    return catalog.load_model(model_id)


def param_count(spec: ModelSpec, experts: int | None = None) -> float:
    a = spec.arch
    if isinstance(a, DecoderArch):
        return float(decoder_params(a, experts))
    if isinstance(a, VitArch):
        return float(vit_params(a))
    if isinstance(a, SwinArch):
        return float(swin_params(a))
    if isinstance(a, CnnArch):
        from planner.arch.cnn import cnn_params
        return float(cnn_params(a))
    if isinstance(a, Unet3dArch):
        from planner.arch.unet3d import unet3d_params
        return float(unet3d_params(a))
    if isinstance(a, PipelineArch):
        return (param_count(_resolve(a.vision)) + param_count(_resolve(a.llm), experts)
                + projector_params(a.projector))
    raise TypeError(f"unknown arch {type(a).__name__}")


def weight_params(spec: ModelSpec) -> float:
    """Parameters held in memory (all experts of an MoE)."""
    return param_count(spec)


def active_params(spec: ModelSpec) -> float:
    """Parameters touched per token: an MoE counts only top_k experts."""
    a = spec.arch
    llm = _resolve(a.llm).arch if isinstance(a, PipelineArch) else a
    if isinstance(llm, DecoderArch) and llm.moe is not None:
        return param_count(spec, experts=llm.moe.top_k)
    return param_count(spec)


def kv_bytes_per_token(a: DecoderArch, kv_bytes_per_elem: float) -> float:
    """K and V for every layer: 2 * layers * kv_heads * head_dim * bytes (reference §1b)."""
    return 2 * a.n_layers * a.n_kv_heads * a.hd * kv_bytes_per_elem
