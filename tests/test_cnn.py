"""planner.arch.cnn against torchvision's published counts and hand-computed layers.

The parameter counts are torchvision's (docs and ``sum(p.numel())``); they must match to the unit.
MACs: torchvision's docs give 4.09 (resnet50) and 2.83 (densenet121) "GFLOPS", which are conv + linear
multiply-accumulates, the quantity ``cnn_macs`` returns. The reference's DenseNet figures (§3: 2.86 @224,
5.85 @320, 14.97 @512 [M]) are fvcore counts, which also charge 2 per batch-norm output element and 1 per
input element of the global average pool; ``test_reference_fvcore_counts`` reproduces them from our layers.
"""
from __future__ import annotations

import pytest

from planner.arch.cnn import Layer, cnn_layers, cnn_macs, cnn_params
from planner.specs import CnnArch


def resnet50(size=224, n_classes=1000) -> CnnArch:
    return CnnArch(family="resnet", image_size=size, n_classes=n_classes, blocks=[3, 4, 6, 3])


def densenet121(size=224, n_classes=1000) -> CnnArch:
    return CnnArch(family="densenet", image_size=size, n_classes=n_classes, blocks=[6, 12, 24, 16],
                   growth_rate=32, init_features=64, bn_size=4)


def fvcore_count(arch: CnnArch) -> int:
    """What fvcore's FlopCountAnalysis reports: conv/linear MACs + 2 per eval-mode BN element (affine)
    + 1 per element entering adaptive_avg_pool2d."""
    layers = cnn_layers(arch)
    bn = sum(2 * x.output_elems() for x in layers if x.kind == "norm")
    gap = sum(x.input_elems() for x in layers if x.kind == "pool" and x.stage == "head")
    return cnn_macs(arch) + bn + gap


# --------------------------------------------------------------------------------------------- ResNet-50

def test_resnet50_params_match_torchvision():
    assert cnn_params(resnet50()) == 25_557_032


def test_resnet50_macs_match_torchvision():
    assert cnn_macs(resnet50()) == pytest.approx(4.09e9, rel=0.01)


def test_resnet50_first_conv_by_hand():
    first = cnn_layers(resnet50())[0]
    assert (first.kind, first.stage, first.kernel, first.stride) == ("conv", "stem", 7, 2)
    assert (first.h_out, first.w_out) == (112, 112)                     # floor((224 + 6 - 7)/2) + 1
    assert first.macs() == 112 * 112 * 64 * 3 * 49 == 118_013_952
    assert first.params() == 64 * 3 * 49
    assert first.input_elems() == 3 * 224 * 224
    assert first.output_elems() == 64 * 112 * 112


def test_resnet50_structure():
    layers = cnn_layers(resnet50())
    convs = [x for x in layers if x.kind == "conv"]
    assert len(convs) == 49 + 4                                         # 16 bottlenecks x 3 + stem, 4 downsamples
    maxpool = next(x for x in layers if x.kind == "pool")
    assert (maxpool.h_in, maxpool.h_out) == (112, 56)                   # 3x3/2 pad 1
    # v1.5: the stride of the first bottleneck of stage 2 sits on the 3x3 conv, not the first 1x1
    s2 = [x for x in convs if x.stage == "stage2"]
    assert (s2[0].kernel, s2[0].stride, s2[0].h_out) == (1, 1, 56)
    assert (s2[1].kernel, s2[1].stride, s2[1].h_out) == (3, 2, 28)
    last_stage = [x for x in layers if x.stage == "stage4"][-1]
    assert (last_stage.out_ch, last_stage.h_out) == (2048, 7)
    fc = layers[-1]
    assert (fc.kind, fc.in_ch, fc.out_ch, fc.params()) == ("fc", 2048, 1000, 2048 * 1000 + 1000)
    assert {x.stage for x in layers} == {"stem", "stage1", "stage2", "stage3", "stage4", "head"}


def test_resnet_residual_add_reads_two_operands():
    add = next(x for x in cnn_layers(resnet50()) if x.kind == "add")
    assert (add.stage, add.out_ch, add.h_out) == ("stage1", 256, 56)
    assert add.input_elems() == 2 * 256 * 56 * 56
    assert add.output_elems() == 256 * 56 * 56
    assert add.macs() == add.params() == 0


def test_head_size_changes_only_the_classifier():
    assert cnn_params(resnet50()) - cnn_params(resnet50(n_classes=14)) == 2049 * (1000 - 14)


# --------------------------------------------------------------------------------------------- DenseNet-121

def test_densenet121_params_match_torchvision():
    assert cnn_params(densenet121()) == 7_978_856
    assert cnn_params(densenet121(n_classes=14)) == 6_968_206        # CheXNet's 14-label head


def test_densenet121_macs_match_torchvision():
    # torchvision docs: 2.83 GFLOPS (= conv + linear MACs). Computed: 2,834,161,664.
    assert cnn_macs(densenet121()) == pytest.approx(2.834e9, rel=0.01)


@pytest.mark.parametrize("size, ref", [(320, 5.85e9), (512, 14.97e9)])
def test_densenet121_macs_at_radiology_sizes(size, ref):
    # reference §3 [M] (fvcore, 14 classes); conv+linear MACs are ~1.2 % lower, inside the 2 % stated
    assert cnn_macs(densenet121(size, 14)) == pytest.approx(ref, rel=0.02)


@pytest.mark.parametrize("size, ref", [(224, 2.86e9), (320, 5.85e9), (512, 14.97e9)])
def test_reference_fvcore_counts(size, ref):
    # the reference's [M] numbers, reproduced to their printed precision from our layer list
    assert fvcore_count(densenet121(size, 14)) == pytest.approx(ref, abs=0.006e9)


def test_densenet121_transition1_by_hand():
    # after block 1: 64 + 6*32 = 256 channels at 56x56; transition halves channels, AvgPool2d(2,2) halves size
    t = [x for x in cnn_layers(densenet121()) if x.stage == "transition1"]
    assert [x.kind for x in t] == ["norm", "act", "conv", "pool"]
    norm, _, conv, pool = t
    assert norm.params() == 2 * 256
    assert (conv.in_ch, conv.out_ch, conv.kernel, conv.h_out) == (256, 128, 1, 56)
    assert conv.macs() == 56 * 56 * 128 * 256 == 102_760_448
    assert conv.params() == 256 * 128 == 32_768
    assert (pool.kernel, pool.stride, pool.h_in, pool.h_out) == (2, 2, 56, 28)
    assert pool.input_elems() == 128 * 56 * 56 and pool.output_elems() == 128 * 28 * 28


def test_densenet121_dense_layer_and_concat():
    block1 = [x for x in cnn_layers(densenet121()) if x.stage == "block1"]
    cats = [x for x in block1 if x.kind == "concat"]
    # one torch.cat per dense layer (64, 96, ..., 224 channels) plus the block's output (256)
    assert [c.in_ch for c in cats] == [64 + 32 * i for i in range(6)] + [256]
    assert cats[2].input_elems() == cats[2].output_elems() == 128 * 56 * 56
    conv1, conv2 = [x for x in block1 if x.kind == "conv"][4:6]       # third dense layer
    assert (conv1.in_ch, conv1.out_ch, conv1.kernel) == (128, 128, 1)   # bn_size * growth = 128
    assert (conv2.in_ch, conv2.out_ch, conv2.kernel, conv2.h_out) == (128, 32, 3, 56)
    assert conv2.macs() == 56 * 56 * 32 * 128 * 9


def test_densenet121_structure():
    layers = cnn_layers(densenet121())
    assert sum(x.kind == "conv" for x in layers) == 1 + 2 * (6 + 12 + 24 + 16) + 3
    head = [x for x in layers if x.stage == "head"]
    assert [x.kind for x in head] == ["norm", "act", "pool", "fc"]
    assert (head[0].out_ch, head[0].h_out) == (1024, 7)
    assert {x.stage for x in layers} == {"stem", "head"} | {f"block{i}" for i in range(1, 5)} \
        | {f"transition{i}" for i in range(1, 4)}


def test_odd_sizes_use_floor_arithmetic():
    # 227 -> conv 114 -> maxpool 57 -> 29 -> 15 -> 8 (PyTorch floors)
    last = [x for x in cnn_layers(resnet50(227)) if x.stage == "stage4"][-1]
    assert last.h_out == 8
    # DenseNet at 97: 49 -> 25 -> 12 -> 6 -> 3 (AvgPool2d(2, 2) floors 25 to 12)
    assert [x for x in cnn_layers(densenet121(97)) if x.kind == "norm"][-1].h_out == 3


# --------------------------------------------------------------------------------------------- Layer

def test_layer_grouped_conv_and_zero_cost_ops():
    conv = Layer("conv", "x", 64, 64, 3, 1, 32, 8, 8, 8, 8)
    assert conv.macs() == 8 * 8 * 64 * 2 * 9 and conv.params() == 64 * 2 * 9
    act = Layer("act", "x", 16, 16, 1, 1, 1, 4, 4, 4, 4)
    assert act.macs() == act.params() == 0 and act.input_elems() == act.output_elems() == 256


def test_densenet_needs_growth_rate():
    with pytest.raises(ValueError, match="growth_rate"):
        cnn_layers(CnnArch(family="densenet", image_size=224, blocks=[6, 12, 24, 16]))
