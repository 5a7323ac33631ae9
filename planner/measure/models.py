"""torch nn.Modules built from catalog architectures (``ModelArch`` -> ``nn.Module``), random weights.

Every op of the cost model (planner/arch/decoder.py, vision.py) runs inside a profiler region that carries the
cost model's op name (``norm``, ``attn_qkv``, ``rope``, ``attn_score``, ``attn_out``, ``mlp_up``, ``mlp_act``,
``mlp_down``, ``embed``, ``lm_head``; vision: ``patch_embed``, ``head``, Swin's ``attn_window`` and ``patch_merge``; CNNs: ``conv``, ``norm``, ``act``,
``pool``, ``concat``, ``add``, ``fc``), so measured rows join predicted rows on (phase, name). Each decoder/ViT
layer also sits in a ``radplan.layer`` region so a row knows whether it belongs to the layers (scaled by
n_layers / layers measured) or to the model around them.

Conventions follow the cost model: the residual add runs in the ``norm`` region after it (the cost model's norm
is "fused with residual add"); logits only for the last position (lm_head after a gather, as TensorRT-LLM and
vLLM do); the gated MLP's gate and up projections are one fused GEMM (``mlp_up``, d -> 2*d_ff), as are Q, K and V
(``attn_qkv``). torchvision is not used (it does not import beside the CPU torch build installed here): the CNNs
follow torchvision's definitions, as planner/arch/cnn.py does, and the tests check their parameter counts.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from planner.errors import PlannerError
from planner.measure.regions import LAYER_REGION, STEP_REGION, region  # noqa: F401 (re-exported)
from planner.specs import CnnArch, DecoderArch, ModelSpec, SwinArch, VitArch


def _init_linear(lin: nn.Linear, std: float = 0.02) -> nn.Linear:
    with torch.no_grad():
        lin.weight.normal_(0.0, std)
        if lin.bias is not None:
            lin.bias.zero_()
    return lin


def linear(k: int, n: int, bias: bool, dtype, device) -> nn.Linear:
    """Random-weight linear layer; N(0, 0.02) as GPT-2/Llama initialise (timing needs finite values only)."""
    return _init_linear(nn.Linear(k, n, bias=bias, dtype=dtype, device=device))


class Norm(nn.Module):
    """RMSNorm (Llama) or LayerNorm (BERT/ViT/OPT)."""

    def __init__(self, d: int, kind: str, dtype, device, eps: float = 1e-5):
        super().__init__()
        self.kind, self.eps, self.d = kind, eps, d
        self.weight = nn.Parameter(torch.ones(d, dtype=dtype, device=device))
        self.bias = nn.Parameter(torch.zeros(d, dtype=dtype, device=device)) if kind == "layernorm" else None

    def forward(self, x):
        if self.kind == "layernorm":
            return F.layer_norm(x, (self.d,), self.weight, self.bias, self.eps)
        return F.rms_norm(x, (self.d,), self.weight, self.eps)


# ----------------------------------------------------------------------------------------------- decoder

class KVCache:
    """Preallocated K and V of one layer: [batch, kv_heads, max_len, head_dim]."""

    def __init__(self, batch: int, kv_heads: int, max_len: int, hd: int, dtype, device):
        self.k = torch.zeros(batch, kv_heads, max_len, hd, dtype=dtype, device=device)
        self.v = torch.zeros_like(self.k)


def rope_tables(max_len: int, hd: int, device, base: float = 10000.0):
    """cos/sin of rotary embeddings (Su et al. 2021, RoFormer; Llama's rotate-half layout)."""
    inv = 1.0 / (base ** (torch.arange(0, hd, 2, device=device, dtype=torch.float32) / hd))
    ang = torch.outer(torch.arange(max_len, device=device, dtype=torch.float32), inv)
    emb = torch.cat([ang, ang], dim=-1)
    return emb.cos(), emb.sin()


def apply_rope(x, cos, sin):
    """x: [B, heads, S, hd]; cos/sin: [S, hd]."""
    h = x.shape[-1] // 2
    rot = torch.cat([-x[..., h:], x[..., :h]], dim=-1)
    return x * cos.to(x.dtype) + rot * sin.to(x.dtype)


def rope_qk(q, k, rope, pos: int):
    """The ``rope`` region: rotary embedding of q and k ([B, heads, S, hd] views) at positions pos..pos+S-1."""
    s = q.shape[-2]
    cos, sin = rope[0][pos:pos + s], rope[1][pos:pos + s]
    return apply_rope(q, cos, sin), apply_rope(k, cos, sin)


def mlp_act(u, gated: bool):
    """The ``mlp_act`` region: SiLU(gate) * up on the fused [gate | up] output, or GELU."""
    if gated:
        g, u = u.chunk(2, dim=-1)
        return F.silu(g) * u
    return F.gelu(u)


def residual_norm(h, delta, norm):
    """The ``norm`` region: the pending residual add (the cost model fuses it into the norm), then the norm;
    returns (residual stream, normalised)."""
    if delta is not None:
        h = h + delta
    return h, norm(h)


class DecoderLayer(nn.Module):
    def __init__(self, a: DecoderArch, dtype, device):
        super().__init__()
        self.a = a
        hd = a.hd
        self.q_dim, self.kv_dim = a.n_heads * hd, a.n_kv_heads * hd
        self.norm1 = Norm(a.d_model, a.norm, dtype, device)
        self.norm2 = Norm(a.d_model, a.norm, dtype, device)
        self.qkv = linear(a.d_model, self.q_dim + 2 * self.kv_dim, a.bias, dtype, device)
        self.o = linear(self.q_dim, a.d_model, a.bias, dtype, device)
        self.up = linear(a.d_model, a.d_ff * (2 if a.gated_mlp else 1), a.bias and not a.gated_mlp, dtype, device)
        self.down = linear(a.d_ff, a.d_model, a.bias and not a.gated_mlp, dtype, device)

    def attention(self, y, cache: KVCache, pos: int, rope):
        a = self.a
        b, s, _ = y.shape
        with region("attn_qkv"):
            qkv = self.qkv(y)
        q, k, v = qkv.split([self.q_dim, self.kv_dim, self.kv_dim], dim=-1)
        q = q.view(b, s, a.n_heads, a.hd).transpose(1, 2)
        k = k.view(b, s, a.n_kv_heads, a.hd).transpose(1, 2)
        v = v.view(b, s, a.n_kv_heads, a.hd).transpose(1, 2)
        if rope is not None:
            with region("rope"):
                q, k = rope_qk(q, k, rope, pos)
        with region("attn_score"):
            cache.k[:, :, pos:pos + s] = k.to(cache.k.dtype)
            cache.v[:, :, pos:pos + s] = v.to(cache.v.dtype)
            kk, vv = cache.k[:, :, :pos + s].to(q.dtype), cache.v[:, :, :pos + s].to(q.dtype)  # no-op unless fp8 KV
            o = F.scaled_dot_product_attention(q, kk, vv, is_causal=s > 1, enable_gqa=a.n_heads != a.n_kv_heads)
            o = o.transpose(1, 2).reshape(b, s, self.q_dim)
        with region("attn_out"):
            return self.o(o)

    def mlp(self, y):
        with region("mlp_up"):
            u = self.up(y)
        with region("mlp_act"):
            u = mlp_act(u, self.a.gated_mlp)
        with region("mlp_down"):
            return self.down(u)


class DecoderModel(nn.Module):
    """``n_layers`` layers of a decoder LLM with embedding, final norm and lm_head; KV cache for decode steps."""

    def __init__(self, a: DecoderArch, n_layers: int, dtype, device, act_dtype=None):
        super().__init__()
        if a.moe is not None or a.parallel_attn_mlp or a.sliding_window is not None:
            raise PlannerError("the measurement backend builds dense sequential decoders only (no MoE, parallel "
                               "attention/MLP or sliding window yet)")
        if a.position not in ("rope", "learned"):
            raise PlannerError(f"position '{a.position}' is not built by the measurement backend (rope, learned)")
        self.a, self.n_layers = a, n_layers
        self.dtype = dtype
        self.embed = nn.Embedding(a.vocab_size, a.d_model, dtype=dtype, device=device)
        nn.init.normal_(self.embed.weight, 0.0, 0.02)
        self.layers = nn.ModuleList(DecoderLayer(a, dtype, device) for _ in range(n_layers))
        self.final_norm = Norm(a.d_model, a.norm, dtype, device)
        self.lm_head = linear(a.d_model, a.vocab_size, False, dtype, device)
        self.caches: list[KVCache] = []
        self.rope = None

    def allocate(self, batch: int, max_len: int, kv_dtype=None) -> None:
        """KV caches (and rotary tables) for ``batch`` sequences of up to ``max_len`` tokens."""
        dev = self.embed.weight.device
        self.caches = []        # the old caches go first: a batch-64 Llama-2-7B cache is 19 GB, not to be held twice
        self.caches = [KVCache(batch, self.a.n_kv_heads, max_len, self.a.hd, kv_dtype or self.dtype, dev)
                       for _ in self.layers]
        self.rope = rope_tables(max_len, self.a.hd, dev) if self.a.position == "rope" else None

    def forward(self, tokens, pos: int = 0):
        """tokens [B, S] at positions pos..pos+S-1; returns logits of the last position [B, vocab]."""
        if not self.caches:
            raise RuntimeError("call allocate(batch, max_len) first")
        s = tokens.shape[1]
        if pos and s > 1:
            raise RuntimeError("chunked prefill is not supported: prefill from position 0, then decode 1 token")
        with region("embed"):
            h = self.embed(tokens)
        pending = None
        for layer, cache in zip(self.layers, self.caches):
            with region(LAYER_REGION):
                with region("norm"):
                    h, y = residual_norm(h, pending, layer.norm1)
                att = layer.attention(y, cache, pos, self.rope)
                with region("norm"):
                    h, y = residual_norm(h, att, layer.norm2)
                pending = layer.mlp(y)
        with region("norm"):
            h, y = residual_norm(h, pending, self.final_norm)
        with region("lm_head"):
            return self.lm_head(y[:, -1])


# ----------------------------------------------------------------------------------------------- ViT

class VitModel(nn.Module):
    """Pre-norm ViT encoder (Dosovitskiy et al. 2021): patch embedding as a GEMM over unfolded patches."""

    def __init__(self, a: VitArch, n_layers: int, dtype, device):
        super().__init__()
        self.a, self.n_layers, self.dtype = a, n_layers, dtype
        d = a.d_model
        self.patch = linear(a.channels * a.patch_size ** 2, d, True, dtype, device)
        n_tok = (a.image_size // a.patch_size) ** 2 + (1 if a.cls_token else 0) + a.register_tokens
        self.pos = nn.Parameter(torch.randn(1, n_tok, d, dtype=dtype, device=device) * 0.02)
        self.cls = nn.Parameter(torch.zeros(1, 1 + a.register_tokens, d, dtype=dtype, device=device)) \
            if a.cls_token or a.register_tokens else None
        self.blocks = nn.ModuleList()
        for _ in range(n_layers):
            blk = nn.Module()
            blk.norm1, blk.norm2 = Norm(d, "layernorm", dtype, device, 1e-6), Norm(d, "layernorm", dtype, device, 1e-6)
            blk.qkv, blk.o = linear(d, 3 * d, True, dtype, device), linear(d, d, True, dtype, device)
            blk.up = linear(d, a.d_ff * (2 if a.gated_mlp else 1), True, dtype, device)
            blk.down = linear(a.d_ff, d, True, dtype, device)
            self.blocks.append(blk)
        self.final_norm = Norm(d, "layernorm", dtype, device, 1e-6)
        self.head = linear(d, a.n_classes, True, dtype, device) if a.n_classes else None

    def forward(self, images):
        a, p = self.a, self.a.patch_size
        b = images.shape[0]
        with region("patch_embed"):
            g = a.image_size // p
            x = images.reshape(b, a.channels, g, p, g, p).permute(0, 2, 4, 1, 3, 5).reshape(b, g * g, -1)
            x = self.patch(x)
            if self.cls is not None:
                x = torch.cat([self.cls.expand(b, -1, -1), x], dim=1)
            h = x + self.pos
        heads, hd = a.n_heads, a.d_model // a.n_heads
        pending = None
        for blk in self.blocks:
            with region(LAYER_REGION):
                with region("norm"):
                    h, y = residual_norm(h, pending, blk.norm1)
                with region("attn_qkv"):
                    qkv = blk.qkv(y)
                with region("attn_score"):
                    o = encoder_attention(qkv, heads)
                with region("attn_out"):
                    o = blk.o(o)
                with region("norm"):
                    h, y = residual_norm(h, o, blk.norm2)
                with region("mlp_up"):
                    u = blk.up(y)
                with region("mlp_act"):
                    u = mlp_act(u, a.gated_mlp)
                with region("mlp_down"):
                    pending = blk.down(u)
        with region("norm"):
            h, y = residual_norm(h, pending, self.final_norm)
        if self.head is None:
            return y
        with region("head"):
            return self.head(y[:, 0])


def encoder_attention(qkv, heads: int, mask=None):
    """Bidirectional attention of a vision encoder (ViT, Swin's windows): the fused [B, N, 3C] QKV projection
    split into heads, SDPA with an optional additive mask, heads merged back to [B, N, C]. The microbenchmark of
    encoder attention (microbench.bench_encoder_attention) times this very function."""
    bw, n, c3 = qkv.shape
    q, k, v = qkv.view(bw, n, 3, heads, c3 // (3 * heads)).permute(2, 0, 3, 1, 4)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask).transpose(1, 2).reshape(bw, n, c3 // 3)


# ----------------------------------------------------------------------------------------------- Swin

def window_index(window: int) -> torch.Tensor:
    """Index into the (2w-1)^2 relative-position bias table for every (query, key) pair of a w x w window
    (Liu et al. 2021, eq. 4; torchvision's _get_relative_position_index)."""
    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)
    return (rel[..., 0] * (2 * window - 1) + rel[..., 1]).flatten()


def shift_mask(side: int, window: int, shift: int) -> torch.Tensor:
    """[windows, w^2, w^2] additive mask of a shifted-window block: tokens that the cyclic shift brought from
    different image regions into one window do not attend to each other (torchvision's shifted_window_attention)."""
    img = torch.zeros(side, side)
    cuts = ((0, side - window), (side - window, side - shift), (side - shift, side))
    label = 0
    for h0, h1 in cuts:
        for w0, w1 in cuts:
            img[h0:h1, w0:w1] = label
            label += 1
    win = img.view(side // window, window, side // window, window).permute(0, 2, 1, 3).reshape(-1, window * window)
    diff = win[:, None, :] - win[:, :, None]
    return torch.zeros_like(diff).masked_fill(diff != 0, -100.0)


def window_attn_mask(bias_table, rel_index, batch: int, shift_mask=None):
    """Additive mask of one block's window attention: the relative-position bias gathered from its
    [(2w-1)^2, heads] table ([1, heads, w^2, w^2]) and, in a shifted block, the [windows, w^2, w^2] shift mask
    added to it and expanded over the batch ([batch x windows, heads, w^2, w^2]), as timm runs it."""
    n, heads = rel_index.numel(), bias_table.shape[1]
    n = int(round(n ** 0.5))
    mask = bias_table[rel_index].view(n, n, heads).permute(2, 0, 1).unsqueeze(0)
    if shift_mask is None:
        return mask
    nw = shift_mask.shape[0]
    return (mask + shift_mask.view(1, nw, 1, n, n).expand(batch, -1, heads, -1, -1)).reshape(batch * nw, heads, n, n)


def to_windows(x, w: int):
    """[B, H, W, C] -> [B * windows, w^2, C]."""
    b, h, wd, c = x.shape
    return x.view(b, h // w, w, wd // w, w, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, w * w, c)


def from_windows(x, w: int, b: int, side: int):
    """[B * windows, w^2, C] -> [B, H, W, C]."""
    c = x.shape[-1]
    return x.view(b, side // w, side // w, w, w, c).permute(0, 1, 3, 2, 4, 5).reshape(b, side, side, c)


class SwinModel(nn.Module):
    """Swin Transformer v1 (Liu et al. 2021) as torchvision's swin_b and timm build it: patch embedding (a 4x4
    stride-4 convolution, here the same GEMM over unfolded patches) and its LayerNorm; per block a window
    partition (after a cyclic shift of w/2 in every second block, none where the stage is one window),
    windowed attention with the relative-position bias (and the shift mask) through SDPA as timm runs it, the
    window reverse; patch merging (2x2 neighbours concatenated, LayerNorm, Linear 4C -> 2C without bias) between
    stages; the final LayerNorm. Built whole (stages differ): layers_measured = layers_total = 1, as for CNNs.
    The window partition/reverse copies run in the ``attn_window`` region, the merge's gather in ``patch_merge``."""

    def __init__(self, a: SwinArch, dtype, device):
        super().__init__()
        self.a, self.dtype = a, dtype
        c, side, w = a.embed_dim, a.image_size // a.patch_size, a.window
        if a.image_size % a.patch_size or any(side % (2 ** i * w) for i in range(len(a.depths))):
            raise PlannerError(f"swin: every stage's side ({side} / 2^i) must be a multiple of the window {w} "
                               "(no padded windows in the measurement backend)")
        self.patch = linear(a.channels * a.patch_size ** 2, c, True, dtype, device)
        self.patch_norm = Norm(c, "layernorm", dtype, device)
        self.register_buffer("rel_index", window_index(w).to(device), persistent=False)
        self.stages = nn.ModuleList()
        for i, (depth, heads) in enumerate(zip(a.depths, a.heads)):
            st = nn.Module()
            st.side, st.heads = side // 2 ** i, heads
            st.blocks = nn.ModuleList()
            for j in range(depth):
                blk = nn.Module()
                blk.norm1, blk.norm2 = Norm(c, "layernorm", dtype, device), Norm(c, "layernorm", dtype, device)
                blk.qkv, blk.o = linear(c, 3 * c, True, dtype, device), linear(c, c, True, dtype, device)
                blk.bias_table = nn.Parameter(torch.randn((2 * w - 1) ** 2, heads, dtype=dtype, device=device) * 0.02)
                hidden = int(c * a.mlp_ratio)
                blk.up, blk.down = linear(c, hidden, True, dtype, device), linear(hidden, c, True, dtype, device)
                blk.shift = w // 2 if (j % 2 and st.side > w) else 0
                if blk.shift:
                    blk.register_buffer("mask", shift_mask(st.side, w, blk.shift).to(device=device, dtype=dtype),
                                        persistent=False)
                st.blocks.append(blk)
            st.merge = None
            if i < len(a.depths) - 1:
                st.merge = nn.Module()
                st.merge.norm = Norm(4 * c, "layernorm", dtype, device)
                st.merge.lin = linear(4 * c, 2 * c, False, dtype, device)
                c *= 2
            self.stages.append(st)
        self.final_norm = Norm(c, "layernorm", dtype, device)
        self.head = linear(c, a.n_classes, True, dtype, device) if a.n_classes else None

    def _attention(self, blk, y, heads: int, b: int, side: int):
        """Shifted-window attention of one block on the normed [B, H, W, C] input; returns [B, H, W, C]."""
        w = self.a.window
        with region("attn_window"):
            if blk.shift:
                y = torch.roll(y, (-blk.shift, -blk.shift), (1, 2))
            win = to_windows(y, w)
        with region("attn_qkv"):
            qkv = blk.qkv(win)
        with region("attn_score"):
            mask = window_attn_mask(blk.bias_table, self.rel_index, b, blk.mask if blk.shift else None)
            o = encoder_attention(qkv, heads, mask)
        with region("attn_out"):
            o = blk.o(o)
        with region("attn_window"):
            o = from_windows(o, w, b, side)
            if blk.shift:
                o = torch.roll(o, (blk.shift, blk.shift), (1, 2))
        return o

    def forward(self, images):
        a, p = self.a, self.a.patch_size
        b = images.shape[0]
        side = a.image_size // p
        with region("patch_embed"):
            x = images.reshape(b, a.channels, side, p, side, p).permute(0, 2, 4, 1, 3, 5).reshape(b, side, side, -1)
            x = self.patch(x)
        with region("norm"):
            h = self.patch_norm(x)
        pending = None
        for st in self.stages:
            for blk in st.blocks:
                with region("norm"):
                    h, y = residual_norm(h, pending, blk.norm1)
                o = self._attention(blk, y, st.heads, b, st.side)
                with region("norm"):
                    h, y = residual_norm(h, o, blk.norm2)
                with region("mlp_up"):
                    u = blk.up(y)
                with region("mlp_act"):
                    u = mlp_act(u, False)
                with region("mlp_down"):
                    pending = blk.down(u)
            if st.merge is not None:
                with region("patch_merge"):   # the pending residual add first, then the 2x2 gather
                    h = h + pending
                    pending = None
                    h = torch.cat([h[:, 0::2, 0::2], h[:, 1::2, 0::2], h[:, 0::2, 1::2], h[:, 1::2, 1::2]], -1)
                with region("norm"):
                    y = st.merge.norm(h)
                with region("patch_merge"):
                    h = st.merge.lin(y)
        with region("norm"):
            h, y = residual_norm(h, pending, self.final_norm)
        if self.head is None:
            return y
        with region("head"):
            return self.head(y.mean((1, 2)))


# ----------------------------------------------------------------------------------------------- CNNs

class _Conv(nn.Module):
    """conv (no bias, as before a BN in torchvision) with its profiler region."""

    def __init__(self, cin, cout, k, stride, dtype, device, pad=None):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride, k // 2 if pad is None else pad, bias=False, dtype=dtype,
                              device=device)
        nn.init.kaiming_normal_(self.conv.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        with region("conv"):
            return self.conv(x)


class _BN(nn.Module):
    def __init__(self, c, dtype, device):
        super().__init__()
        self.bn = nn.BatchNorm2d(c, dtype=dtype, device=device).eval()

    def forward(self, x):
        with region("norm"):
            return self.bn(x)


def _relu(x):
    with region("act"):
        return F.relu(x)


class DenseNet(nn.Module):
    """DenseNet-BC as torchvision.models.densenet (memory_efficient=False), regions per cnn.py layer kind."""

    def __init__(self, a: CnnArch, dtype, device):
        super().__init__()
        g, bn = a.growth_rate, a.bn_size
        self.conv0, self.norm0 = _Conv(a.channels, a.init_features, 7, 2, dtype, device), _BN(a.init_features, dtype, device)
        self.blocks, self.transitions = nn.ModuleList(), nn.ModuleList()
        c = a.init_features
        for k, n in enumerate(a.blocks):
            layers = nn.ModuleList()
            for i in range(n):
                cin = c + i * g
                lay = nn.Module()
                lay.norm1, lay.conv1 = _BN(cin, dtype, device), _Conv(cin, bn * g, 1, 1, dtype, device)
                lay.norm2, lay.conv2 = _BN(bn * g, dtype, device), _Conv(bn * g, g, 3, 1, dtype, device)
                layers.append(lay)
            self.blocks.append(layers)
            c += n * g
            if k != len(a.blocks) - 1:
                t = nn.Module()
                t.norm, t.conv = _BN(c, dtype, device), _Conv(c, c // 2, 1, 1, dtype, device)
                self.transitions.append(t)
                c //= 2
        self.norm5 = _BN(c, dtype, device)
        self.fc = linear(c, a.n_classes, True, dtype, device)

    def forward(self, x):
        x = _relu(self.norm0(self.conv0(x)))
        with region("pool"):
            x = F.max_pool2d(x, 3, 2, 1)
        for k, layers in enumerate(self.blocks):
            feats = [x]
            for lay in layers:
                with region("concat"):
                    inp = torch.cat(feats, 1)
                y = lay.conv1(_relu(lay.norm1(inp)))
                feats.append(lay.conv2(_relu(lay.norm2(y))))
            with region("concat"):
                x = torch.cat(feats, 1)
            if k < len(self.transitions):
                t = self.transitions[k]
                x = t.conv(_relu(t.norm(x)))
                with region("pool"):
                    x = F.avg_pool2d(x, 2, 2)
        x = _relu(self.norm5(x))
        with region("pool"):
            x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        with region("fc"):
            return self.fc(x)


class ResNet(nn.Module):
    """Bottleneck ResNet v1.5 as torchvision.models.resnet50/101/152."""

    def __init__(self, a: CnnArch, dtype, device):
        super().__init__()
        self.conv1, self.bn1 = _Conv(a.channels, a.init_features, 7, 2, dtype, device), _BN(a.init_features, dtype, device)
        self.blocks = nn.ModuleList()
        cin = a.init_features
        for s, n in enumerate(a.blocks):
            width = a.init_features * 2 ** s
            for i in range(n):
                stride = 2 if (s > 0 and i == 0) else 1
                blk = nn.Module()
                blk.c1, blk.b1 = _Conv(cin, width, 1, 1, dtype, device), _BN(width, dtype, device)
                blk.c2, blk.b2 = _Conv(width, width, 3, stride, dtype, device), _BN(width, dtype, device)
                blk.c3, blk.b3 = _Conv(width, width * 4, 1, 1, dtype, device), _BN(width * 4, dtype, device)
                blk.down = None
                if stride != 1 or cin != width * 4:
                    blk.down = nn.Sequential(_Conv(cin, width * 4, 1, stride, dtype, device, pad=0),
                                             _BN(width * 4, dtype, device))
                self.blocks.append(blk)
                cin = width * 4
        self.fc = linear(cin, a.n_classes, True, dtype, device)

    def forward(self, x):
        x = _relu(self.bn1(self.conv1(x)))
        with region("pool"):
            x = F.max_pool2d(x, 3, 2, 1)
        for blk in self.blocks:
            y = _relu(blk.b1(blk.c1(x)))
            y = _relu(blk.b2(blk.c2(y)))
            y = blk.b3(blk.c3(y))
            idt = blk.down(x) if blk.down is not None else x
            with region("add"):
                y = y + idt
            x = _relu(y)
        with region("pool"):
            x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        with region("fc"):
            return self.fc(x)


# ----------------------------------------------------------------------------------------------- entry point

def build_model(spec: ModelSpec, layers: int | None, dtype, device) -> tuple[nn.Module, int, int]:
    """(module, layers built, layers of the real model). ``layers`` None builds them all; CNNs are always built
    whole (they are small and their layers are not identical)."""
    a = spec.arch
    torch.manual_seed(0)
    if isinstance(a, DecoderArch):
        n = min(layers or a.n_layers, a.n_layers)
        return DecoderModel(a, n, dtype, device).eval(), n, a.n_layers
    if isinstance(a, VitArch):
        n = min(layers or a.n_layers, a.n_layers)
        return VitModel(a, n, dtype, device).eval(), n, a.n_layers
    if isinstance(a, SwinArch):
        return SwinModel(a, dtype, device).eval(), 1, 1
    if isinstance(a, CnnArch):
        if a.family == "densenet":
            return DenseNet(a, dtype, device).eval(), 1, 1
        return ResNet(a, dtype, device).eval(), 1, 1
    raise PlannerError(f"model '{spec.id}' ({a.kind}) is not built by the measurement backend: decoder LLMs, ViTs, "
                       "Swins and CNNs are; for a pipeline measure its parts (e.g. its vision encoder and its LLM)")


def param_total(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
