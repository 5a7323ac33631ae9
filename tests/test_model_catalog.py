"""The model catalog (data/models/*.yaml): every file loads, the required ids exist, parameter counts
computed from the architecture fields agree with the published counts, and hand-computed KV sizes."""
from __future__ import annotations

import pytest

from planner import catalog
from planner.arch import active_params, kv_bytes_per_token, param_count

MODEL_FILES = sorted(p.stem for p in catalog.MODELS_DIR.glob("*.yaml"))
# read raw (unvalidated) so that one bad file fails its own tests instead of the whole module's collection
PUBLISHED = [s for s in MODEL_FILES if catalog.read_yaml(catalog.MODELS_DIR / f"{s}.yaml").get("published")]

REQUIRED = {
    "llm": ["llama-2-7b", "llama-2-13b", "llama-2-70b", "llama-3-8b", "llama-3.1-8b", "llama-3-70b",
            "llama-3.1-70b", "mistral-7b", "mixtral-8x7b", "opt-30b", "opt-175b", "bloom-176b", "gpt-j-6b",
            "medgemma-4b-text"],
    "vision": ["resnet-50", "densenet-121", "densenet-121-320", "vit-b16", "vit-l14-336", "swin-b",
               "siglip-400m-896", "rad-dino", "chexagent-vit"],
    "pipeline": ["r2gengpt", "llava-med-1.5", "maira-2", "chexagent-8b", "medgemma-4b"],
}


def test_every_model_file_loads():
    models = catalog.models()                      # validates every file; raises on the first bad one
    assert sorted(models) == MODEL_FILES


@pytest.mark.parametrize("category, ids", REQUIRED.items())
def test_required_ids_present_with_category(category, ids):
    models = catalog.models()
    missing = [i for i in ids if i not in models]
    assert not missing, f"missing model files: {missing}"
    assert {i: models[i].category for i in ids} == {i: category for i in ids}


@pytest.mark.parametrize("model_id", MODEL_FILES)
def test_every_model_names_its_sources(model_id):
    m = catalog.load_model(model_id)
    assert m.config_source.strip()
    if m.published is None:                        # no count found: the notes must say so
        assert m.notes and "published" in m.notes.lower()
    else:
        assert m.published.source.strip()


@pytest.mark.parametrize("model_id", PUBLISHED)
def test_param_count_matches_published(model_id):
    m = catalog.load_model(model_id)
    assert param_count(m) == pytest.approx(m.published.params, rel=0.02), m.published.source


@pytest.mark.parametrize("model_id, expected", [
    ("llama-2-7b", 2 * 32 * 32 * 128 * 2),        # 524,288 B = 512 KiB (reference §1b)
    ("llama-3-70b", 2 * 80 * 8 * 128 * 2),        # 327,680 B = 320 KiB
    ("mistral-7b", 2 * 32 * 8 * 128 * 2),         # 131,072 B = 128 KiB
    ("medgemma-4b-text", 2 * 34 * 4 * 256 * 2),   # 139,264 B = 136 KiB, full-attention bound
])
def test_kv_bytes_per_token_bf16(model_id, expected):
    a = catalog.load_model(model_id).arch
    assert 2 * a.n_layers * a.n_kv_heads * a.hd * 2 == expected
    assert kv_bytes_per_token(a, 2) == expected


def test_kv_hand_values():
    assert 2 * 32 * 32 * 128 * 2 == 524_288
    assert 2 * 80 * 8 * 128 * 2 == 327_680
    assert 2 * 32 * 8 * 128 * 2 == 131_072


def test_mixtral_active_differs_from_total():
    m = catalog.load_model("mixtral-8x7b")
    total, active = param_count(m), active_params(m)
    assert total == pytest.approx(46.7e9, rel=0.02)       # Mistral AI: 46.7B total
    assert active == pytest.approx(12.9e9, rel=0.02)      # Mistral AI: 12.9B used per token
    # by hand: 6 idle experts x 32 layers x 3 matrices of 4096 x 14336
    assert total - active == 6 * 32 * 3 * 4096 * 14336


def test_dense_model_active_equals_total():
    m = catalog.load_model("llama-3-8b")
    assert active_params(m) == param_count(m)


def _vision_width(spec) -> int:
    a = spec.arch
    if a.kind == "swin":
        return a.embed_dim * 2 ** (len(a.depths) - 1)
    return a.d_model


@pytest.mark.parametrize("model_id", REQUIRED["pipeline"])
def test_pipeline_projector_joins_its_models(model_id):
    a = catalog.load_model(model_id).arch
    vision, llm = catalog.load_model(a.vision), catalog.load_model(a.llm)
    assert vision.category == "vision" and llm.category == "llm"
    assert a.projector.in_dim == _vision_width(vision)
    assert a.projector.out_dim == llm.arch.d_model


def test_pipeline_image_tokens_follow_from_the_encoder():
    swin = catalog.load_model("swin-b").arch                    # 224/4 = 56, three 2x merges -> 7x7
    assert (swin.image_size // swin.patch_size // 2 ** 3) ** 2 == catalog.load_model("r2gengpt").arch \
        .image_tokens_per_image == 49
    clip = catalog.load_model("vit-l14-336").arch               # CLS dropped by LLaVA
    assert (clip.image_size // clip.patch_size) ** 2 == 576
    dino = catalog.load_model("rad-dino").arch
    assert (dino.image_size // dino.patch_size) ** 2 == catalog.load_model("maira-2").arch \
        .image_tokens_per_image == 1369
    siglip = catalog.load_model("siglip-400m-896").arch         # 64x64 patches pooled 4x4
    assert (siglip.image_size // siglip.patch_size // 4) ** 2 == 256


def test_vicuna_is_llama_2_7b_shapes():
    # MAIRA-2's Vicuna-7B-v1.5 has the Llama-2-7B architecture, so the pipeline points at llama-2-7b
    assert catalog.load_model("maira-2").arch.llm == "llama-2-7b"


def test_medgemma_text_config():
    a = catalog.load_model("medgemma-4b-text").arch
    assert (a.n_layers, a.d_model, a.n_heads, a.n_kv_heads, a.hd, a.d_ff, a.vocab_size) == \
        (34, 2560, 8, 4, 256, 10240, 262208)
    assert a.tied_embeddings and a.gated_mlp and a.sliding_window == 1024
