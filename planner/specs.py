"""Strict pydantic schemas for the files under hw_specs/ and data/.

Field names carry their unit (``memory_bandwidth_gb_s``); files use the units people read on datasheets
(TFLOPS, GB, GB/s) and the properties below convert to SI (FLOP/s, bytes, bytes/s) once, at the edge.
Every model is frozen and rejects unknown keys, so a typo in a spec file is an error, not silently ignored.
"""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from planner.units import GB, GIB, TERA


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------------------------- accelerators

# Compute dtypes a spec file may give a dense peak for. A precision the hardware lacks is absent, not zero.
PEAK_KEYS = ("fp64", "fp64_tensor", "fp32", "tf32", "fp16", "bf16", "fp8", "int8", "int4", "fp4")


class PeakDense(Strict):
    """Dense (no 2:4 sparsity) peak throughput. TFLOPS for floats, TOPS for integers."""
    fp64_tflops: float | None = Field(None, gt=0)
    fp64_tensor_tflops: float | None = Field(None, gt=0)
    fp32_tflops: float | None = Field(None, gt=0)
    tf32_tflops: float | None = Field(None, gt=0)
    fp16_tflops: float | None = Field(None, gt=0)
    bf16_tflops: float | None = Field(None, gt=0)
    fp8_tflops: float | None = Field(None, gt=0)
    int8_tops: float | None = Field(None, gt=0)
    int4_tops: float | None = Field(None, gt=0)
    fp4_tflops: float | None = Field(None, gt=0)

    def flops(self, dtype: str) -> float | None:
        """Dense peak of ``dtype`` in FLOP/s (or OP/s), None where the hardware has no native path."""
        unit = "tops" if dtype.startswith("int") else "tflops"
        v = getattr(self, f"{dtype}_{unit}")
        return None if v is None else v * TERA

    def available(self) -> dict[str, float]:
        return {k: self.flops(k) for k in PEAK_KEYS if self.flops(k) is not None}


class Memory(Strict):
    capacity_gb: float = Field(gt=0)
    type: str
    bandwidth_gb_s: float = Field(gt=0)
    l2_mb: float | None = Field(None, ge=0)


Topology = Literal["switch", "bridge-pairs", "point-to-point", "mesh", "none"]


class Interconnect(Strict):
    """Scale-up link between accelerators of one node. Bandwidths are PER DIRECTION (vendors print bidir)."""
    link: str
    all_to_all_gb_s_per_direction: float | None = Field(None, gt=0)
    per_peer_gb_s_per_direction: float | None = Field(None, gt=0)
    topology: Topology
    max_gpus_per_node: int = Field(ge=1)
    pcie_gen: int = Field(ge=1, le=7)
    pcie_gb_s_per_direction: float = Field(gt=0)

    @model_validator(mode="after")
    def _link_needs_bandwidth(self):
        if self.topology != "none" and self.all_to_all_gb_s_per_direction is None:
            raise ValueError(f"topology '{self.topology}' needs all_to_all_gb_s_per_direction")
        return self


class Power(Strict):
    tdp_w: float = Field(gt=0)
    idle_w: float = Field(gt=0)

    @model_validator(mode="after")
    def _idle_below_tdp(self):
        if self.idle_w >= self.tdp_w:
            raise ValueError(f"idle_w {self.idle_w} must be below tdp_w {self.tdp_w}")
        return self


class Price(Strict):
    purchase_usd: float | None = Field(None, gt=0)
    purchase_basis: str | None = None
    cloud_usd_per_gpu_hour: float | None = Field(None, gt=0)        # low end of on-demand market
    cloud_usd_per_gpu_hour_high: float | None = Field(None, gt=0)   # hyperscaler / high end
    cloud_provider: str | None = None
    cloud_price_date: str | None = None                            # ISO date the price was read


class Accelerator(Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9.\-]*$")
    name: str
    vendor: str
    kind: Literal["gpu", "accelerator", "cpu", "edge"]
    family: str                      # efficiency family in data/calibration/efficiency.yaml
    form_factor: str
    launch_year: int = Field(ge=2010, le=2035)
    peak_dense: PeakDense
    sparsity_2to4: bool = False      # hardware can run 2:4 sparse at 2x; never used by default
    memory: Memory
    interconnect: Interconnect
    power: Power
    mig_max_slices: int | None = Field(None, ge=1)
    price: Price
    sources: dict[str, str]          # dotted field path -> source (or "assumption: ...")
    notes: str | None = None

    @model_validator(mode="after")
    def _every_figure_has_a_source(self):
        missing = [p for p in figure_paths(self) if not _has_source(p, self.sources)]
        if missing:
            raise ValueError(f"figures without a 'sources' entry: {', '.join(missing)}")
        return self

    # SI views
    @property
    def memory_bytes(self) -> float:
        """Vendors' "80 GB" of HBM/GDDR is binary: an A100/H100 80GB reports 81,920 / 81,559 MiB to nvidia-smi.
        So capacity_gb is read as GiB (assumption, gpu_datasheets.md pitfall 23: GB vs GiB)."""
        return self.memory.capacity_gb * GIB

    @property
    def bandwidth_bytes_s(self) -> float:
        return self.memory.bandwidth_gb_s * GB


def figure_paths(acc: Accelerator) -> list[str]:
    """Dotted paths of every numeric figure present in a spec (what needs a source)."""
    out = [f"peak_dense.{k}" for k, v in acc.peak_dense.model_dump().items() if v is not None]
    for block in ("memory", "interconnect", "power", "price"):
        for k, v in getattr(acc, block).model_dump().items():
            if isinstance(v, (int, float)) and not isinstance(v, bool) and v is not None:
                out.append(f"{block}.{k}")
    if acc.mig_max_slices is not None:
        out.append("mig_max_slices")
    out.append("launch_year")
    return out


def _has_source(path: str, sources: dict[str, str]) -> bool:
    """A source may be given for the exact path or for its block ('memory' covers 'memory.capacity_gb')."""
    parts = path.split(".")
    return any(".".join(parts[:i]) in sources and sources[".".join(parts[:i])].strip()
               for i in range(len(parts), 0, -1))


# --------------------------------------------------------------------------------------------- models

class Published(Strict):
    """A published figure we test against, with where it comes from."""
    params: float = Field(gt=0)           # parameter count (not billions)
    source: str


class MoE(Strict):
    n_experts: int = Field(ge=2)
    top_k: int = Field(ge=1)

    @model_validator(mode="after")
    def _k_le_n(self):
        if self.top_k > self.n_experts:
            raise ValueError(f"top_k {self.top_k} exceeds n_experts {self.n_experts}")
        return self


class DecoderArch(Strict):
    kind: Literal["decoder"] = "decoder"
    n_layers: int = Field(ge=1)
    d_model: int = Field(ge=1)
    n_heads: int = Field(ge=1)
    n_kv_heads: int = Field(ge=1)
    head_dim: int | None = Field(None, ge=1)      # default d_model / n_heads (Gemma uses 256)
    d_ff: int = Field(ge=1)
    vocab_size: int = Field(ge=1)
    gated_mlp: bool                               # SwiGLU/GeGLU: three matrices instead of two
    norm: Literal["rmsnorm", "layernorm"]
    position: Literal["rope", "learned", "alibi"]
    max_context: int = Field(ge=1)
    tied_embeddings: bool = False
    bias: bool = False                            # linear layers carry biases (OPT, BLOOM, GPT-J attn-less)
    parallel_attn_mlp: bool = False               # GPT-J: attention and MLP read the same normed input
    sliding_window: int | None = Field(None, ge=1)
    global_attention_every: int | None = Field(None, ge=1)  # Gemma 3: 1 layer in 6 attends globally
    moe: MoE | None = None

    @model_validator(mode="after")
    def _heads_divide(self):
        if self.n_heads % self.n_kv_heads:
            raise ValueError(f"n_heads {self.n_heads} not a multiple of n_kv_heads {self.n_kv_heads}")
        if self.head_dim is None and self.d_model % self.n_heads:
            raise ValueError(f"d_model {self.d_model} not divisible by n_heads {self.n_heads}")
        return self

    @property
    def hd(self) -> int:
        return self.head_dim or self.d_model // self.n_heads


class VitArch(Strict):
    kind: Literal["vit"] = "vit"
    image_size: int = Field(ge=1)
    patch_size: int = Field(ge=1)
    n_layers: int = Field(ge=1)
    d_model: int = Field(ge=1)
    n_heads: int = Field(ge=1)
    d_ff: int = Field(ge=1)
    channels: int = Field(3, ge=1)
    cls_token: bool = True
    register_tokens: int = Field(0, ge=0)
    n_classes: int = Field(0, ge=0)               # 0: encoder only (feature extractor), no head
    gated_mlp: bool = False


class SwinArch(Strict):
    kind: Literal["swin"] = "swin"
    image_size: int = Field(ge=1)
    patch_size: int = Field(ge=1)
    window: int = Field(ge=1)
    embed_dim: int = Field(ge=1)
    depths: list[int]
    heads: list[int]
    mlp_ratio: float = Field(4.0, gt=0)
    channels: int = Field(3, ge=1)
    n_classes: int = Field(0, ge=0)


class CnnArch(Strict):
    """Convolutional nets generated layer by layer in planner/arch/cnn.py from their published recipe."""
    kind: Literal["cnn"] = "cnn"
    family: Literal["resnet", "densenet"]
    image_size: int = Field(ge=1)
    channels: int = Field(3, ge=1)
    n_classes: int = Field(1000, ge=1)
    blocks: list[int]                             # resnet: bottlenecks per stage; densenet: layers per block
    growth_rate: int | None = None                # densenet
    init_features: int = 64
    bn_size: int | None = None                    # densenet bottleneck width factor


class Unet3dArch(Strict):
    """A DynUNet/nnU-Net-style 3D U-Net generated layer by layer in planner/arch/unet3d.py (MONAI DynUNet with
    res_block off: per stage ``convs_per_stage`` conv+InstanceNorm(affine)+LeakyReLU, the first conv with the
    stage stride; decoder: transposed conv (kernel = stride), concat with the skip, the same conv block;
    1x1x1 output conv). One "image" is one cubic patch of ``patch_size``^3 voxels."""
    kind: Literal["unet3d"] = "unet3d"
    in_channels: int = Field(1, ge=1)
    n_classes: int = Field(ge=1)
    patch_size: int = Field(ge=1)                 # cubic patch edge, voxels
    filters: list[int]                            # channels per stage, encoder top to bottleneck
    strides: list[int]                            # stride of each stage's first conv (first stage usually 1)
    kernel: int = Field(3, ge=1)                  # cubic conv kernel of every stage
    convs_per_stage: int = Field(2, ge=1)
    deep_supervision: Literal[False] = False      # only inference without deep-supervision heads is modelled

    @model_validator(mode="after")
    def _stages_consistent(self):
        if len(self.filters) < 2 or len(self.filters) != len(self.strides):
            raise ValueError(f"filters ({len(self.filters)}) and strides ({len(self.strides)}) need one entry per "
                             "stage, at least 2 stages")
        if any(f < 1 for f in self.filters) or any(s < 1 for s in self.strides):
            raise ValueError("filters and strides must be positive")
        if self.kernel % 2 == 0:
            raise ValueError(f"kernel {self.kernel} must be odd (same padding)")
        down = 1
        for s in self.strides:
            down *= s
        if self.patch_size % down:
            raise ValueError(f"patch_size {self.patch_size} is not divisible by the total stride {down}: the "
                             "decoder could not restore the skip sizes")
        return self


class Projector(Strict):
    kind: Literal["linear", "mlp", "qformer", "perceiver"]
    in_dim: int = Field(ge=1)
    out_dim: int = Field(ge=1)
    n_layers: int = Field(1, ge=1)
    hidden_dim: int | None = None
    params: float | None = Field(None, ge=0)      # for qformer/perceiver: total params from the config

    @model_validator(mode="after")
    def _resampler_needs_params(self):
        if self.kind in ("qformer", "perceiver") and self.params is None:
            raise ValueError(f"a {self.kind} projector needs 'params' (its weights are not a stack of linears)")
        return self


class PipelineArch(Strict):
    """Vision encoder -> projector -> LLM, as in R2GenGPT or LLaVA-Med."""
    kind: Literal["pipeline"] = "pipeline"
    vision: str                                   # model id of the vision encoder
    llm: str                                      # model id of the decoder
    projector: Projector
    image_tokens_per_image: int = Field(ge=1)
    images_per_request: int = Field(1, ge=1)
    average_views: bool = False                   # R2GenGPT averages views: tokens stay per-image
    beams: int = Field(1, ge=1)
    prompt_tokens: int = Field(ge=0)              # text tokens besides image tokens
    output_tokens: int = Field(ge=1)


Arch = DecoderArch | VitArch | SwinArch | CnnArch | Unet3dArch | PipelineArch


class ModelSpec(Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9.\-]*$")
    name: str
    category: Literal["llm", "vision", "pipeline"]
    arch: Arch = Field(discriminator="kind")
    published: Published | None = None
    config_source: str                            # where the architecture numbers come from
    notes: str | None = None
