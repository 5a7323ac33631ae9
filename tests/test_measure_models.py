"""torch models built from catalog architectures: parameter counts equal the planner's, the KV cache decodes
exactly like a full prefill, and every profiler region carries a cost-model op name."""
import pytest

torch = pytest.importorskip("torch")

from planner import catalog  # noqa: E402
from planner.arch.cnn import cnn_params  # noqa: E402
from planner.arch.params import decoder_params, vit_params  # noqa: E402
from planner.measure.models import LAYER_REGION, STEP_REGION, build_model, param_total, region  # noqa: E402
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
