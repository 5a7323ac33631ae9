"""planner.arch.unet3d (MONAI DynUNet / nnU-Net-style 3D U-Net) against the reference's fvcore count and by hand.

Reference shared/reference/radiology_workloads.md §3 [M]: DynUNet, 6 stages 32->320, strides [1, 2, 2, 2, 2, 2],
118 classes: 31.2 M params, ≈486 GMACs per 128^3 patch (fvcore 0.1.5). Checked once on CPU against MONAI 1.4.0
DynUNet + fvcore 0.1.5: 31,193,238 params; fvcore 486,802,268,160 = conv 485,016,207,360 (conv + transposed
conv) + instance_norm 1,786,060,800 (fvcore charges 5 per element of an affine norm). We count the conv part.
"""
from __future__ import annotations

import math

import pytest

import planner
from planner import catalog
from planner.arch import param_count
from planner.arch.pipeline import compile_model
from planner.arch.unet3d import unet3d_layers, unet3d_macs, unet3d_params, unet3d_peak_live_elems
from planner.quant import PRECISIONS
from planner.specs import Unet3dArch

SPEC = catalog.load_model("dynunet-totalseg")
A = SPEC.arch


def test_catalog_entry_is_the_reference_configuration():
    assert isinstance(A, Unet3dArch) and SPEC.category == "vision"
    assert (A.filters, A.strides, A.n_classes, A.patch_size, A.in_channels) == (
        [32, 64, 128, 256, 320, 320], [1, 2, 2, 2, 2, 2], 118, 128, 1)
    assert (A.kernel, A.convs_per_stage, A.deep_supervision) == (3, 2, False)


def test_params_match_reference_and_monai():
    assert param_count(SPEC) == pytest.approx(31.2e6, rel=0.02)
    assert unet3d_params(A) == 31_193_238                         # MONAI 1.4.0 DynUNet, sum of numel()


def test_macs_per_patch_match_reference_fvcore():
    assert unet3d_macs(A) == pytest.approx(486e9, rel=0.05)
    assert unet3d_macs(A) == 485_016_207_360                      # fvcore's 'conv' bucket, to the unit
    norm_elems = sum(x.output_elems() for x in unet3d_layers(A) if x.kind == "norm")
    assert unet3d_macs(A) + 5 * norm_elems == 486_802_268_160     # fvcore total (instance_norm at 5/elem)


def test_structure_and_layers_by_hand():
    layers = unet3d_layers(A)
    convs = [x for x in layers if x.kind == "conv"]
    ups = [x for x in layers if x.kind == "conv_transpose"]
    assert len(convs) == 6 * 2 + 5 * 2 + 1 and len(ups) == 5      # encoder, decoder blocks, 1x1x1 head
    first = convs[0]
    assert (first.in_ch, first.out_ch, first.size_out) == (1, 32, 128)
    assert first.macs() == 128 ** 3 * 32 * 1 * 27 and first.params() == 32 * 27
    down = next(x for x in convs if x.name == "downsamples.0.conv1")
    assert (down.stride, down.size_in, down.size_out) == (2, 128, 64)   # floor((128 + 2 - 3) / 2) + 1
    bottom = next(x for x in convs if x.name == "bottleneck.conv2")
    assert bottom.size_out == 4                                   # 128 / 2^5
    up = ups[-1]                                                  # upsamples.4: 64 -> 32 channels, 64^3 -> 128^3
    assert (up.in_ch, up.out_ch, up.kernel, up.size_in, up.size_out) == (64, 32, 2, 64, 128)
    assert up.macs() == 64 ** 3 * 64 * 32 * 8 and up.params() == 64 * 32 * 8
    dec = next(x for x in convs if x.name == "upsamples.4.conv_block.conv1")
    assert dec.in_ch == 64 and dec.out_ch == 32                   # concat of upsampled 32 + skip 32
    head = convs[-1]
    assert (head.kernel, head.out_ch) == (1, 118) and head.params() == 32 * 118 + 118
    norms = [x for x in layers if x.kind == "norm"]
    assert sum(x.params() for x in norms) == 2 * 2 * (sum(A.filters) + sum(A.filters[:-1]))


def test_peak_activation_footprint():
    # largest: the 1x1x1 head reads 32 x 128^3 and writes 118 logits x 128^3 (more than the 64 + 64 of the last
    # concat); every skip has been consumed by then
    assert unet3d_peak_live_elems(A) == (32 + 118) * 128 ** 3
    # in the encoder the held skips count: at downsamples.1.conv1 (64 x 64^3 in, 128 x 32^3 out) the outputs of
    # stages 0 (32 x 128^3) and 1 (64 x 64^3) are held
    small = Unet3dArch(n_classes=1, patch_size=16, filters=[4, 8, 16], strides=[1, 2, 2])
    assert unet3d_peak_live_elems(small) >= 4 * 16 ** 3 + 8 * 8 ** 3 + 16 * 4 ** 3


def test_bad_configurations_are_refused():
    with pytest.raises(ValueError, match="one entry per stage"):
        Unet3dArch(n_classes=2, patch_size=64, filters=[8, 16], strides=[1, 2, 2])
    with pytest.raises(ValueError, match="not divisible"):
        Unet3dArch(n_classes=2, patch_size=100, filters=[8, 16, 32, 64], strides=[1, 2, 2, 2])
    with pytest.raises(ValueError):
        Unet3dArch(n_classes=2, patch_size=64, filters=[8, 16], strides=[1, 2], deep_supervision=True)


def test_compiles_to_vision_conv_ops_per_patch():
    plan = compile_model(SPEC, PRECISIONS["fp16"], {})
    assert plan.category == "vision" and plan.vision_tokens == 1 and plan.prefill is None
    ops = plan.vision.ops
    assert {o.phase for o in ops} == {"vision"}
    conv = [o for o in ops if o.name in ("conv", "conv_transpose")]
    assert {o.kind for o in conv} == {"conv"}
    assert all(o.fusible for o in ops if o.name in ("norm", "act", "concat"))
    flops = sum(o.evaluate(1, 1, 0).flops for o in ops)
    assert flops == pytest.approx(2 * 485_016_207_360)            # FLOPs = 2 x MACs per patch


def test_estimate_rtx3090_fp16_batch2_is_finite():
    r = planner.estimate("rtx-3090", "dynunet-totalseg", "fp16", batch=2)
    assert r["category"] == "vision" and r["fits"]
    assert math.isfinite(r["images_per_s"]) and r["images_per_s"] > 0       # patches per second
    assert r["latency_s"] == pytest.approx(2 / r["images_per_s"])
    # a 1.5 mm TotalSegmentator CT (135 patches) is seconds of GPU time, far below the measured 77-212 s
    assert 135 / r["images_per_s"] < 77
