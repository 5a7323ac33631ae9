"""ResNet (bottleneck, v1.5) and DenseNet-BC generated layer by layer from a ``CnnArch``.

The recipes follow torchvision's definitions exactly (torchvision/models/resnet.py and densenet.py), so the
parameter count of ``resnet50()`` (25,557,032) and ``densenet121()`` (7,978,856) is reproduced to the unit.
Spatial sizes use PyTorch's integer arithmetic, out = floor((in + 2*pad - k) / stride) + 1.

Every tensor operation of the eager forward pass is one ``Layer``, including the ones that do no
multiply-accumulates (norm, activation, pooling, residual add, concatenation): on a GPU these are
memory-bound and their bytes matter. Pure: no torch, no I/O.
"""
from __future__ import annotations

from dataclasses import dataclass

from planner.specs import CnnArch

KINDS = ("conv", "norm", "act", "pool", "fc", "concat", "add")


@dataclass(frozen=True)
class Layer:
    kind: str        # one of KINDS
    stage: str       # 'stem', 'stage1'..'stage4' | 'block1'.., 'transition1'.., 'head'
    in_ch: int
    out_ch: int
    kernel: int
    stride: int
    groups: int
    h_in: int
    w_in: int
    h_out: int
    w_out: int
    name: str = ""   # torchvision module path where there is one ('layer1.0.conv2'), for joins with profiles

    def macs(self) -> int:
        """Multiply-accumulates per image; 0 for ops without a weight (norm, act, pool, concat, add)."""
        if self.kind == "conv":
            return self.h_out * self.w_out * self.out_ch * (self.in_ch // self.groups) * self.kernel ** 2
        if self.kind == "fc":
            return self.in_ch * self.out_ch
        return 0

    def params(self) -> int:
        """Learned parameters. Convs carry no bias (torchvision uses bias=False before a BN); BN has gamma
        and beta (its running mean/var are buffers, not parameters); the classifier has a bias."""
        if self.kind == "conv":
            return self.out_ch * (self.in_ch // self.groups) * self.kernel ** 2
        if self.kind == "norm":
            return 2 * self.out_ch
        if self.kind == "fc":
            return self.in_ch * self.out_ch + self.out_ch
        return 0

    def input_elems(self) -> int:
        """Activation elements read per image. A residual add reads two operands of the output's shape;
        a concat reads every channel it copies (in_ch == out_ch: the features gathered so far)."""
        n = self.in_ch * self.h_in * self.w_in
        return 2 * n if self.kind == "add" else n

    def output_elems(self) -> int:
        return self.out_ch * self.h_out * self.w_out


def _out(size: int, k: int, stride: int, pad: int) -> int:
    """PyTorch's output size for conv/pool without dilation or ceil_mode."""
    return (size + 2 * pad - k) // stride + 1


class _Builder:
    """Tracks the running (channels, h, w) so each recipe reads like the torchvision forward()."""

    def __init__(self, channels: int, size: int):
        self.c, self.h, self.w = channels, size, size
        self.layers: list[Layer] = []

    def conv(self, stage, name, out_ch, k, stride=1, pad=None) -> None:
        pad = k // 2 if pad is None else pad        # torchvision: 7x7 pad 3, 3x3 pad 1, 1x1 pad 0
        h, w = _out(self.h, k, stride, pad), _out(self.w, k, stride, pad)
        self.layers.append(Layer("conv", stage, self.c, out_ch, k, stride, 1, self.h, self.w, h, w, name))
        self.c, self.h, self.w = out_ch, h, w

    def pool(self, stage, name, k, stride, pad=0) -> None:
        h, w = _out(self.h, k, stride, pad), _out(self.w, k, stride, pad)
        self.layers.append(Layer("pool", stage, self.c, self.c, k, stride, 1, self.h, self.w, h, w, name))
        self.h, self.w = h, w

    def same(self, kind, stage, name, ch=None) -> None:
        """Shape-preserving op (norm, act, concat, add) over ``ch`` channels (default: current)."""
        ch = self.c if ch is None else ch
        self.layers.append(Layer(kind, stage, ch, ch, 1, 1, 1, self.h, self.w, self.h, self.w, name))

    def head(self, n_classes: int) -> None:
        """Global average pool (AdaptiveAvgPool2d(1)) and the linear classifier."""
        self.layers.append(Layer("pool", "head", self.c, self.c, self.h, 1, 1, self.h, self.w, 1, 1, "avgpool"))
        self.layers.append(Layer("fc", "head", self.c, n_classes, 1, 1, 1, 1, 1, 1, 1, "fc"))
        self.c, self.h, self.w = n_classes, 1, 1


def _resnet(arch: CnnArch) -> list[Layer]:
    """ResNet v1.5 with bottlenecks (torchvision resnet50/101/152): the stride sits on the 3x3 conv."""
    b = _Builder(arch.channels, arch.image_size)
    b.conv("stem", "conv1", arch.init_features, 7, stride=2)
    b.same("norm", "stem", "bn1")
    b.same("act", "stem", "relu")
    b.pool("stem", "maxpool", 3, 2, pad=1)
    expansion = 4
    for s, n_blocks in enumerate(arch.blocks):
        stage, width = f"stage{s + 1}", arch.init_features * 2 ** s
        out_ch = width * expansion
        for i in range(n_blocks):
            stride = 2 if (s > 0 and i == 0) else 1
            name = f"layer{s + 1}.{i}"
            c_in, h_in, w_in = b.c, b.h, b.w
            b.conv(stage, f"{name}.conv1", width, 1)
            b.same("norm", stage, f"{name}.bn1")
            b.same("act", stage, f"{name}.relu")
            b.conv(stage, f"{name}.conv2", width, 3, stride=stride)
            b.same("norm", stage, f"{name}.bn2")
            b.same("act", stage, f"{name}.relu")
            b.conv(stage, f"{name}.conv3", out_ch, 1)
            b.same("norm", stage, f"{name}.bn3")
            if stride != 1 or c_in != out_ch:          # projection shortcut on the block input
                h, w = _out(h_in, 1, stride, 0), _out(w_in, 1, stride, 0)
                b.layers.append(Layer("conv", stage, c_in, out_ch, 1, stride, 1, h_in, w_in, h, w,
                                      f"{name}.downsample.0"))
                b.layers.append(Layer("norm", stage, out_ch, out_ch, 1, 1, 1, h, w, h, w,
                                      f"{name}.downsample.1"))
            b.same("add", stage, f"{name}.add")
            b.same("act", stage, f"{name}.relu")
    b.head(arch.n_classes)
    return b.layers


def _densenet(arch: CnnArch) -> list[Layer]:
    """DenseNet-BC (torchvision densenet121/161/169/201, memory_efficient=False)."""
    if arch.growth_rate is None or arch.bn_size is None:
        raise ValueError("densenet needs growth_rate and bn_size (densenet-121: 32 and 4)")
    g, bn = arch.growth_rate, arch.bn_size
    b = _Builder(arch.channels, arch.image_size)
    b.conv("stem", "features.conv0", arch.init_features, 7, stride=2)
    b.same("norm", "stem", "features.norm0")
    b.same("act", "stem", "features.relu0")
    b.pool("stem", "features.pool0", 3, 2, pad=1)
    for k, n_layers in enumerate(arch.blocks):
        stage, c0 = f"block{k + 1}", b.c
        for i in range(n_layers):
            name = f"features.denseblock{k + 1}.denselayer{i + 1}"
            c_in = c0 + i * g
            # _DenseLayer.forward: torch.cat(inputs, 1) copies every earlier feature map, every layer
            b.c = c_in
            b.same("concat", stage, f"{name}.cat")
            b.same("norm", stage, f"{name}.norm1")
            b.same("act", stage, f"{name}.relu1")
            b.conv(stage, f"{name}.conv1", bn * g, 1)
            b.same("norm", stage, f"{name}.norm2")
            b.same("act", stage, f"{name}.relu2")
            b.conv(stage, f"{name}.conv2", g, 3)
        b.c = c0 + n_layers * g
        b.same("concat", stage, f"features.denseblock{k + 1}.cat")   # _DenseBlock returns torch.cat(features)
        if k != len(arch.blocks) - 1:
            stage, name = f"transition{k + 1}", f"features.transition{k + 1}"
            b.same("norm", stage, f"{name}.norm")
            b.same("act", stage, f"{name}.relu")
            b.conv(stage, f"{name}.conv", b.c // 2, 1)
            b.pool(stage, f"{name}.pool", 2, 2)                      # AvgPool2d(kernel_size=2, stride=2)
    b.same("norm", "head", "features.norm5")
    b.same("act", "head", "relu")                                     # F.relu in DenseNet.forward
    b.head(arch.n_classes)
    return b.layers


def cnn_layers(arch: CnnArch) -> list[Layer]:
    """Every op of one image's forward pass, in execution order."""
    if not arch.blocks:
        raise ValueError("CnnArch.blocks is empty")
    if arch.family == "resnet":
        return _resnet(arch)
    if arch.family == "densenet":
        return _densenet(arch)
    raise ValueError(f"unknown CNN family '{arch.family}'")


def cnn_params(arch: CnnArch) -> int:
    return sum(layer.params() for layer in cnn_layers(arch))


def cnn_macs(arch: CnnArch) -> int:
    """Multiply-accumulates per image of the convolutions and the classifier (what torchvision's GFLOPS
    column and fvcore count as the main cost; norms and elementwise ops are 0 here, see Layer.macs)."""
    return sum(layer.macs() for layer in cnn_layers(arch))
