"""torch models built from catalog architectures: parameter counts equal the planner's, the KV cache decodes
exactly like a full prefill, and every profiler region carries a cost-model op name."""
import pytest

torch = pytest.importorskip("torch")

from planner import catalog  # noqa: E402
from planner.arch.cnn import cnn_params  # noqa: E402
from planner.arch.params import decoder_params, swin_params, vit_params  # noqa: E402
from planner.measure.models import (LAYER_REGION, STEP_REGION, build_model, param_total, region,  # noqa: E402
                                    shift_mask, window_index)
from planner.specs import ModelSpec  # noqa: E402

TINY_LLM = {"kind": "decoder", "n_layers": 4, "d_model": 64, "n_heads": 4, "n_kv_heads": 2, "d_ff": 96,
            "vocab_size": 128, "gated_mlp": True, "norm": "rmsnorm", "position": "rope", "max_context": 128}


def spec(arch: dict, mid="tiny", cat="llm") -> ModelSpec:
    return ModelSpec.model_validate({"id": mid, "name": mid, "category": cat, "config_source": "test", "arch": arch})


def test_densenet121_parameters_equal_the_catalog_count():
    s = catalog.load_model("densenet-121")
    m, built, total = build_model(s, None, torch.float32, "cpu")
    assert param_total(m) == cnn_params(s.arch) == 6_968_206


def test_small_resnet_parameters_equal_cnn_py():
    s = spec({"kind": "cnn", "family": "resnet", "image_size": 64, "blocks": [1, 1, 1, 1], "n_classes": 10}, "r", "vision")
    m, _, _ = build_model(s, None, torch.float32, "cpu")
    assert param_total(m) == cnn_params(s.arch)
    assert m(torch.randn(2, 3, 64, 64)).shape == (2, 10)


def test_decoder_parameters_equal_the_formula_for_the_layers_built():
    s = spec(TINY_LLM)
    m, built, total = build_model(s, 2, torch.float32, "cpu")
    assert (built, total) == (2, 4)
    a2 = s.arch.model_copy(update={"n_layers": 2})
    assert param_total(m) == decoder_params(a2)


def test_vit_parameters_equal_the_formula():
    s = spec({"kind": "vit", "image_size": 32, "patch_size": 8, "n_layers": 2, "d_model": 48, "n_heads": 4,
              "d_ff": 96, "n_classes": 5}, "v", "vision")
    m, _, _ = build_model(s, None, torch.float32, "cpu")
    assert param_total(m) == vit_params(s.arch)
    assert m(torch.randn(3, 3, 32, 32)).shape == (3, 5)


def test_kv_cache_decode_equals_full_prefill():
    """Logits of token S after prefilling S-1 tokens and decoding one equal those of a prefill of all S
    (GQA + RoPE + cache positions wired right)."""
    m, _, _ = build_model(spec(TINY_LLM), 2, torch.float32, "cpu")
    tok = torch.randint(0, 128, (2, 12))
    with torch.no_grad():
        m.allocate(2, 16)
        full = m(tok, 0)
        m.allocate(2, 16)
        m(tok[:, :-1], 0)
        step = m(tok[:, -1:], 11)
    assert torch.allclose(full, step, atol=1e-5, rtol=1e-4)


def test_every_region_is_a_cost_model_op_of_the_phase():
    from torch.profiler import profile

    import planner
    m, _, _ = build_model(spec(TINY_LLM), 1, torch.float32, "cpu")
    m.allocate(1, 8)
    with torch.no_grad(), profile() as prof:
        with region(STEP_REGION):
            m(torch.randint(0, 128, (1, 4)), 0)
    names = {e.name for e in prof.events() if "::" not in e.name} - {STEP_REGION, LAYER_REGION}
    predicted = set(planner.roofline_table("h100-sxm", "llama-2-7b", "fp32", phases=("prefill",))["name"])
    assert names == predicted - {"allreduce"} == {"embed", "norm", "attn_qkv", "rope", "attn_score", "attn_out",
                                                    "mlp_up", "mlp_act", "mlp_down", "lm_head"}


TINY_SWIN = {"kind": "swin", "image_size": 56, "patch_size": 4, "window": 7, "embed_dim": 16, "depths": [2, 2],
             "heads": [2, 4], "n_classes": 5}


def test_swin_b_parameters_equal_torchvision_without_its_head():
    """86,743,224: torchvision's swin_b (87,768,224) less its 1000-class head (the catalog's published count)."""
    s = catalog.load_model("swin-b")
    m, built, total = build_model(s, None, torch.float32, "cpu")
    assert param_total(m) == swin_params(s.arch) == s.published.params == 86_743_224
    assert (built, total) == (1, 1)
    shifted = [blk.shift for st in m.stages for blk in st.blocks]
    assert shifted[:4] == [0, 3, 0, 3] and shifted[-2:] == [0, 0]   # the 7x7 last stage is one window: no shift


def test_swin_shift_mask_separates_the_regions_the_roll_brought_together():
    """14x14 tokens, window 7, shift 3: the top-left window holds one region (no mask); the bottom-right one
    holds 4x4, 4x3, 3x4 and 3x3 tokens of four regions: 16^2 + 12^2 + 12^2 + 9^2 = 625 of 49^2 pairs attend."""
    m = shift_mask(14, 7, 3)
    assert m.shape == (4, 49, 49)
    assert (m[0] == 0).all()
    assert int((m[3] == 0).sum()) == 625 and set(m[3].unique().tolist()) == {-100.0, 0.0}
    idx = window_index(7)
    assert idx.shape == (49 * 49,) and int(idx.min()) == 0 and int(idx.max()) == 13 * 13 - 1
    assert int(idx[0]) == 6 * 13 + 6                    # a token and itself: offset (0, 0), the table's centre


def test_swin_window_attention_equals_masked_full_attention():
    """Block 0 (no shift) of a tiny Swin equals attention over the whole image restricted to each token's
    7x7 window, with the relative-position bias gathered by hand."""
    s = spec(TINY_SWIN, "s", "vision")
    m, _, _ = build_model(s, None, torch.float32, "cpu")
    blk = m.stages[0].blocks[0]
    y = torch.randn(1, 14, 14, 16)
    with torch.no_grad():
        got = m._attention(blk, y, 2, 1, 14)
        x = y.reshape(196, 16)
        q, k, v = blk.qkv(x).view(196, 3, 2, 8).permute(1, 2, 0, 3)
        rows, cols = torch.arange(196) // 14, torch.arange(196) % 14
        same = ((rows[:, None] // 7) == (rows[None] // 7)) & ((cols[:, None] // 7) == (cols[None] // 7))
        dr = rows[:, None] - rows[None] + 6
        dc = cols[:, None] - cols[None] + 6
        bias = blk.bias_table[(dr * 13 + dc).clamp(0, 168)].permute(2, 0, 1)          # [heads, 196, 196]
        att = (q @ k.transpose(-1, -2)) / 8 ** 0.5 + bias
        att = att.masked_fill(~same, float("-inf")).softmax(-1)
        want = blk.o((att @ v).permute(1, 0, 2).reshape(196, 16)).view(1, 14, 14, 16)
    assert torch.allclose(got, want, atol=1e-5, rtol=1e-4)


def test_swin_regions_are_the_cost_model_ops():
    from torch.profiler import profile

    from planner.arch.vision import swin_ops
    from planner.quant import load_precision
    s = spec(TINY_SWIN, "s", "vision")
    m, _, _ = build_model(s, None, torch.float32, "cpu")
    with torch.no_grad(), profile() as prof:
        with region(STEP_REGION):
            out = m(torch.randn(2, 3, 56, 56))
    assert out.shape == (2, 5)
    names = {e.name for e in prof.events() if "::" not in e.name} - {STEP_REGION}
    predicted = {o.name for o in swin_ops(s.arch, load_precision("fp32"))[0]}
    assert names == predicted == {"patch_embed", "norm", "attn_window", "attn_qkv", "attn_score", "attn_out",
                                  "mlp_up", "mlp_act", "mlp_down", "patch_merge", "head"}
