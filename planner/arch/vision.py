"""Vision model ops (phase 'vision'): ViT, Swin, CNNs and 3D U-Nets. B = images; for transformers S = tokens per
image and C = tokens attended (all of them in a ViT, one window in Swin); CNN ops are per image (monomial B), and
a 3D U-Net's "image" is one patch (a CT study is many patches: the workload's images_per_study).

ViT cost per layer (reference radiology_workloads.md §8): 4*N*d^2 + 2*N*d*mlp + 2*N^2*d MACs.
"""
from __future__ import annotations

from dataclasses import replace

from planner.arch.params import vit_tokens
from planner.ops import OpTemplate, elementwise, gemm, mono
from planner.quant import Precision
from planner.specs import CnnArch, SwinArch, Unet3dArch, VitArch

PHASE = "vision"


def per_token_scale(op: OpTemplate, frac: float) -> OpTemplate:
    """The op runs on ``frac`` times the S tokens (Swin's later stages): token terms scale, weights do not."""
    return replace(op, flops=op.flops * frac, vflops=op.vflops * frac, act_bytes=op.act_bytes * frac,
                   kv_bytes=op.kv_bytes * frac)


def _w(p: Precision, name: str, k: int, n: int, count: float, m: str = "tok") -> OpTemplate:
    return gemm(name, PHASE, m, k, n, w_bytes=p.weight_bytes, a_in_bytes=p.gemm_in_bytes, a_out_bytes=p.act_bytes,
                count=count, compute_scale=p.gemm_scale)


def transformer_block_ops(d: int, d_ff: int, heads: int, count: float, p: Precision, window: int | None = None,
                          gated: bool = False) -> list[OpTemplate]:
    """One pre-norm encoder block (bidirectional attention), ``count`` identical instances."""
    ab = p.act_bytes
    hd = d // heads
    attn = OpTemplate("attn_score", PHASE, "attention", count, flops=mono(tok_ctx=4.0 * d),
                      vflops=mono(tok_ctx=5.0 * heads), weight_bytes=mono(), kv_bytes=mono(),
                      act_bytes=mono(tok=4 * heads * hd * ab), window=window)
    return [
        elementwise("norm", PHASE, d, reads=2, writes=2, flops_per_elem=5, bytes_per_elem=ab, count=2 * count,
                    eager_small=True),
        _w(p, "attn_qkv", d, 3 * d, count), attn, _w(p, "attn_out", d, d, count),
        _w(p, "mlp_up", d, d_ff * (2 if gated else 1), count),
        elementwise("mlp_act", PHASE, d_ff, reads=1, writes=1, flops_per_elem=8, bytes_per_elem=ab, count=count,
                    fusible=True, eager_small=True),
        _w(p, "mlp_down", d_ff, d, count),
    ]


def vit_ops(a: VitArch, p: Precision) -> tuple[list[OpTemplate], int]:
    """Ops and tokens per image of a ViT encoder."""
    n = vit_tokens(a)
    patches = (a.image_size // a.patch_size) ** 2
    ops = [per_token_scale(_w(p, "patch_embed", a.channels * a.patch_size ** 2, a.d_model, 1), patches / n)]
    ops += transformer_block_ops(a.d_model, a.d_ff, a.n_heads, a.n_layers, p, gated=a.gated_mlp)
    ops.append(elementwise("norm", PHASE, a.d_model, reads=1, writes=1, flops_per_elem=5, bytes_per_elem=p.act_bytes,
                           count=1, eager_small=True))
    if a.n_classes:
        ops.append(_w(p, "head", a.d_model, a.n_classes, 1, m="seq"))
    return ops, n


def swin_ops(a: SwinArch, p: Precision) -> tuple[list[OpTemplate], int]:
    """Swin: windowed attention over window^2 tokens, patch merging between stages. Token counts per stage
    are expressed relative to stage-1 tokens N1 so one S (= N1) serves every op.

    Beside the GEMMs and the block's norms (torchvision's swin_b / timm, as planner.measure.models.SwinModel
    runs them): the patch embedding's LayerNorm; per block the window partition and reverse copies
    (``attn_window``: 2, plus the 2 cyclic shifts in every second block of a stage wider than one window),
    which an engine folds into its attention kernel's addressing (fusible); per merge the 2x2 gather with the
    pending residual add (``patch_merge``, fusible) and the LayerNorm over 4C."""
    side = a.image_size // a.patch_size
    n1 = side * side
    ab = p.act_bytes
    c = a.embed_dim
    ops = [_w(p, "patch_embed", a.channels * a.patch_size ** 2, c, 1.0),
           elementwise("norm", PHASE, c, reads=1, writes=1, flops_per_elem=5, bytes_per_elem=ab, count=1,
                       eager_small=True)]
    for i, (depth, heads) in enumerate(zip(a.depths, a.heads)):
        frac = 1.0 / 4 ** i                              # tokens at stage i / tokens at stage 1
        shifted = depth // 2 if side // 2 ** i > a.window else 0
        block = transformer_block_ops(c, int(c * a.mlp_ratio), heads, depth, p, window=a.window ** 2)
        block.append(elementwise("attn_window", PHASE, c, reads=1, writes=1, flops_per_elem=0, bytes_per_elem=ab,
                                 count=2 * depth + 2 * shifted, fusible=True))
        ops += [per_token_scale(op, frac) for op in block]
        if i < len(a.depths) - 1:
            ops += [per_token_scale(elementwise("patch_merge", PHASE, c, reads=3, writes=2, flops_per_elem=1,
                                                bytes_per_elem=ab, count=1, fusible=True), frac),
                    per_token_scale(elementwise("norm", PHASE, 4 * c, reads=1, writes=1, flops_per_elem=5,
                                                bytes_per_elem=ab, count=1, eager_small=True), frac / 4),
                    per_token_scale(_w(p, "patch_merge", 4 * c, 2 * c, 1), frac / 4)]
            c *= 2
    ops.append(per_token_scale(elementwise("norm", PHASE, c, reads=1, writes=1, flops_per_elem=5,
                                           bytes_per_elem=ab, count=1), 1 / 4 ** (len(a.depths) - 1)))
    if a.n_classes:
        ops.append(_w(p, "head", c, a.n_classes, 1, m="seq"))
    return ops, n1


# CNN / U-Net layer kinds -> op names that measured rows join on
_CNN_NAMES = {"conv": "conv", "conv_transpose": "conv_transpose", "norm": "norm", "act": "act", "pool": "pool",
              "fc": "fc", "concat": "concat", "add": "add"}
_CONV_KINDS = ("conv", "conv_transpose")


def layer_ops(layers, p: Precision) -> list[OpTemplate]:
    """One op per layer (planner/arch/cnn.py ``Layer`` or planner/arch/unet3d.py ``Layer3d``), per image
    (monomial B). BN/IN and ReLU are 'fusible': TensorRT folds them into the conv. Activations are stored in the
    GEMM input dtype: an int8/fp8 CNN engine requantizes in the conv epilogue (TensorRT int8 CNNs keep int8
    tensors between layers), unlike LLM W8A8 whose residual stream stays 16-bit."""
    ab = p.gemm_in_bytes
    ops = []
    for layer in layers:
        name = _CNN_NAMES[layer.kind]
        acts = (layer.input_elems() + layer.output_elems()) * ab
        if layer.kind in _CONV_KINDS or layer.kind == "fc":
            ops.append(OpTemplate(name, PHASE, "gemm" if layer.kind == "fc" else "conv", 1,
                                  flops=mono(seq=2.0 * layer.macs()), weight_bytes=mono(one=layer.params() * p.weight_bytes),
                                  act_bytes=mono(seq=acts), kv_bytes=mono(), group=layer.stage,
                                  compute_scale=p.gemm_scale))
        else:
            # a pool reads its whole window per output (kernel area ops); the others ~2 ops per output element
            work = layer.output_elems() * (layer.kernel ** 2 if layer.kind == "pool" else 2.0)
            ops.append(OpTemplate(name, PHASE, "pool" if layer.kind == "pool" else "vector", 1, flops=mono(),
                                  vflops=mono(seq=float(work)),
                                  weight_bytes=mono(one=layer.params() * ab), act_bytes=mono(seq=acts),
                                  kv_bytes=mono(), group=layer.stage,
                                  # TensorRT folds BN/ReLU/add into the conv and elides concat copies by writing
                                  # each layer's output into the concatenated buffer; eager torch.cat copies
                                  fusible=layer.kind in ("norm", "act", "add", "concat"),
                                  # an eager framework's fixed cost per call of these small ops, measured in
                                  # tiny-width CNNs (planner.measure.eager_ops.bench_cnn_ops) where a profile has it
                                  eager_small=True, overhead_key=f"cnn.{name}"))
    return ops


def cnn_ops(a: CnnArch, p: Precision) -> tuple[list[OpTemplate], int]:
    """One op per layer of a 2D CNN, per image (see ``layer_ops``)."""
    from planner.arch.cnn import cnn_layers
    return layer_ops(cnn_layers(a), p), 1


def unet3d_ops(a: Unet3dArch, p: Precision) -> tuple[list[OpTemplate], int]:
    """One op per layer of a 3D U-Net, per patch (conv and transposed conv are kind 'conv'; instance norm,
    LeakyReLU and the skip concat are fusible vector ops)."""
    from planner.arch.unet3d import unet3d_layers
    return layer_ops(unet3d_layers(a), p), 1
