"""Compile any catalog model into phases of stacked ops: vision encode (+ projector), LLM prefill, LLM decode.

A radiology pipeline (R2GenGPT, LLaVA-Med, MAIRA-2, CheXagent, MedGemma) is vision encoder -> projector ->
LLM: its images are encoded first, their tokens join the text prompt in the LLM prefill, then the LLM decodes
(with ``beams`` sequences per request under beam search). Pure: the caller resolves the specs.
"""
from __future__ import annotations

from dataclasses import dataclass

from planner.arch.decoder import decoder_ops
from planner.arch.params import kv_bytes_per_token
from planner.arch.vision import PHASE, cnn_ops, swin_ops, unet3d_ops, vit_ops
from planner.memory import MemoryNeed
from planner.ops import OpTemplate, gemm
from planner.quant import PRECISIONS, Precision
from planner.roofline import CompiledOps, compile_ops, split_by_context
from planner.specs import CnnArch, DecoderArch, ModelSpec, PipelineArch, Projector, SwinArch, Unet3dArch, VitArch


@dataclass(frozen=True)
class ModelPlan:
    model_id: str
    category: str                       # llm | vision | pipeline
    precision: Precision                # of the LLM (or of the vision model when standalone)
    vision_precision: Precision | None
    vision: CompiledOps | None          # encoder (+ projector), per image
    vision_tokens: int                  # S of the vision phase (tokens per image, 1 for CNNs/U-Nets)
    images_per_request: int
    image_tokens: int                   # tokens the images add to the LLM prompt, per request
    prefill: CompiledOps | None
    decode: CompiledOps | None
    llm: DecoderArch | None
    beams: int
    default_input_len: int | None       # text prompt tokens (pipelines carry theirs)
    default_output_len: int | None
    memory: MemoryNeed
    decode_static: CompiledOps | None = None    # decode ops whose cost does not depend on the context
    decode_ctx: CompiledOps | None = None       # attention: grows with the context


def _split_decode(plan: ModelPlan) -> ModelPlan:
    """The sweep evaluates context-free decode ops once per (gpu, batch, tp), attention per context."""
    from dataclasses import replace
    if plan.decode is None:
        return plan
    static, ctx = split_by_context(list(plan.decode.ops))
    return replace(plan, decode_static=compile_ops(static, plan.precision.attn_dtype),
                   decode_ctx=compile_ops(ctx, plan.precision.attn_dtype))


def vision_phase_ops(arch, p: Precision) -> tuple[list[OpTemplate], int, float, float]:
    """Ops, tokens per image, hidden width and MLP width (for activation memory) of a vision model."""
    if isinstance(arch, VitArch):
        ops, n = vit_ops(arch, p)
        return ops, n, arch.d_model, arch.d_ff
    if isinstance(arch, SwinArch):
        ops, n = swin_ops(arch, p)
        return ops, n, arch.embed_dim, arch.embed_dim * arch.mlp_ratio
    if isinstance(arch, CnnArch):
        from planner.arch.cnn import cnn_layers
        ops, n = cnn_ops(arch, p)
        peak = max(layer.input_elems() + layer.output_elems() for layer in cnn_layers(arch))
        return ops, n, peak / 4.0, 0.0     # width chosen so 4*width = the largest layer's in+out
    if isinstance(arch, Unet3dArch):
        from planner.arch.unet3d import unet3d_peak_live_elems
        ops, n = unet3d_ops(arch, p)
        return ops, n, unet3d_peak_live_elems(arch) / 4.0, 0.0   # per patch: largest in+out + held skips
    raise TypeError(f"not a vision arch: {type(arch).__name__}")


def projector_ops(pr: Projector, p: Precision, token_frac: float) -> list[OpTemplate]:
    """Projector GEMMs per vision token (``token_frac`` = LLM image tokens per encoder token)."""
    from planner.arch.vision import per_token_scale
    if pr.kind in ("qformer", "perceiver"):     # cross-attention resampler: cost ~ its params per query token
        n = max(1, int((pr.params or pr.in_dim * pr.out_dim) / pr.out_dim))
        dims = [(pr.out_dim, n)]
    else:
        hidden = pr.hidden_dim or pr.out_dim
        widths = [pr.in_dim] + [hidden] * (pr.n_layers - 1) + [pr.out_dim]
        dims = list(zip(widths[:-1], widths[1:]))
    ops = [gemm("projector", PHASE, "tok", k, n, w_bytes=p.weight_bytes, a_in_bytes=p.gemm_in_bytes,
                a_out_bytes=p.act_bytes, count=1) for k, n in dims]
    return [per_token_scale(o, token_frac) for o in ops]


def _llm_memory(a: DecoderArch, p: Precision, decode: list[OpTemplate], extra_weights: float) -> MemoryNeed:
    w = sum(o.count * o.weight_bytes[0] for o in decode)
    emb = a.vocab_size * a.d_model * p.act_bytes
    if not a.tied_embeddings:
        w += emb                                  # the input table (lm_head's matrix is counted above)
    act_tok = (4 * a.d_model + a.d_ff * (3 if a.gated_mlp else 2)) * p.act_bytes
    return MemoryNeed(weights=w + extra_weights, kv_per_seq_token=kv_bytes_per_token(a, p.kv_bytes),
                      act_per_token=act_tok, act_per_seq=a.vocab_size * 4.0)


def vision_precision_for(p: Precision) -> Precision:
    """Pipelines keep the vision encoder in 16-bit when the LLM is quantized (as R2GenGPT/LLaVA deploy it)."""
    return PRECISIONS["fp16"] if p.is_quantized else p


def compile_model(spec: ModelSpec, p: Precision, parts: dict[str, ModelSpec]) -> ModelPlan:
    """``parts`` maps the ids a pipeline names to their specs."""
    a = spec.arch
    if isinstance(a, DecoderArch):
        pre, dec = decoder_ops(a, "prefill", p), decoder_ops(a, "decode", p)
        return _split_decode(ModelPlan(spec.id, "llm", p, None, None, 0, 0, 0, compile_ops(pre, p.attn_dtype),
                                       compile_ops(dec, p.attn_dtype), a, 1, None, None, _llm_memory(a, p, dec, 0.0)))
    if isinstance(a, PipelineArch):
        vp = vision_precision_for(p)
        vops, n_tok, width, ff = vision_phase_ops(parts[a.vision].arch, vp)
        vops += projector_ops(a.projector, vp, a.image_tokens_per_image / n_tok)
        llm = parts[a.llm].arch
        pre, dec = decoder_ops(llm, "prefill", p), decoder_ops(llm, "decode", p)
        vis_w = sum(o.count * o.weight_bytes[0] for o in vops)
        per_req_tokens = a.image_tokens_per_image * (1 if a.average_views else a.images_per_request)
        mem = _llm_memory(llm, p, dec, vis_w)
        return _split_decode(ModelPlan(
            spec.id, "pipeline", p, vp, compile_ops(vops, vp.attn_dtype), n_tok, a.images_per_request, per_req_tokens,
            compile_ops(pre, p.attn_dtype), compile_ops(dec, p.attn_dtype), llm, a.beams, a.prompt_tokens,
            a.output_tokens, mem))
    ops, n_tok, width, ff = vision_phase_ops(a, p)
    w = sum(o.count * o.weight_bytes[0] for o in ops)
    mem = MemoryNeed(weights=w, kv_per_seq_token=0.0, act_per_token=(4 * width + 2 * ff) * p.act_bytes)
    return ModelPlan(spec.id, "vision", p, p, compile_ops(ops, p.attn_dtype), n_tok, 1, 0, None, None, None, 1,
                     None, None, mem)
