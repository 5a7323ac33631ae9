"""A DynUNet / nnU-Net-style 3D U-Net generated layer by layer from a ``Unet3dArch``.

The recipe follows MONAI's ``DynUNet`` (monai/networks/nets/dynunet.py, res_block=False, deep_supervision
off) with the defaults nnU-Net uses: InstanceNorm with affine weights, LeakyReLU, convs without bias (a norm
follows each), transposed convs without bias (``trans_bias=False``), a 1x1x1 output conv with bias.

    input block + downsamples + bottleneck: per stage i, ``convs_per_stage`` x (conv k^3 -> norm -> act);
        the first conv has stride ``strides[i]``, ``filters[i-1] -> filters[i]``
    upsamples (deepest first): transposed conv (kernel = stride = strides[i]) filters[i] -> filters[i-1],
        concat with the encoder output of stage i-1 (2 x filters[i-1] channels), then the same conv block
        ``2*filters[i-1] -> filters[i-1] -> ...`` at stride 1
    output block: 1x1x1 conv filters[0] -> n_classes (+ bias)

Sizes use PyTorch's arithmetic with MONAI's padding ((k - s + 1) // 2): a stride-s conv maps n to
floor((n + 2*pad - k) / s) + 1, a transposed conv with kernel = stride maps n to n * s.

``Layer3d`` mirrors planner/arch/cnn.py's ``Layer`` (kind, stage, name, macs(), params(), input_elems(),
output_elems()), per patch, so the same op builder serves both. MAC convention: one multiply-accumulate per
weight per output voxel of a conv, and per weight per *input* voxel of a transposed conv (what fvcore counts;
with kernel = stride the two are equal). Norms, activations and concat do no MACs. Pure: no torch, no I/O.
"""
from __future__ import annotations

from dataclasses import dataclass

from planner.specs import Unet3dArch

KINDS = ("conv", "conv_transpose", "norm", "act", "concat")


@dataclass(frozen=True)
class Layer3d:
    kind: str        # one of KINDS
    stage: str       # 'enc0'..'encN' (the last is the bottleneck), 'dec1'..'decN' (dec1 = deepest), 'head'
    in_ch: int
    out_ch: int
    kernel: int
    stride: int
    size_in: int     # cubic edge of the input, voxels
    size_out: int
    name: str = ""   # MONAI DynUNet module path ('downsamples.0.conv1'), for joins with profiles
    bias: bool = False

    def macs(self) -> int:
        """Multiply-accumulates per patch; 0 for ops without a weight."""
        if self.kind == "conv":
            return self.size_out ** 3 * self.out_ch * self.in_ch * self.kernel ** 3
        if self.kind == "conv_transpose":
            return self.size_in ** 3 * self.in_ch * self.out_ch * self.kernel ** 3
        return 0

    def params(self) -> int:
        """Conv weights (+ bias where there is one); InstanceNorm(affine=True) has gamma and beta."""
        if self.kind in ("conv", "conv_transpose"):
            return self.out_ch * self.in_ch * self.kernel ** 3 + (self.out_ch if self.bias else 0)
        if self.kind == "norm":
            return 2 * self.out_ch
        return 0

    def input_elems(self) -> int:
        """Activation elements read per patch (a concat reads the channels it copies: in_ch == out_ch)."""
        return self.in_ch * self.size_in ** 3

    def output_elems(self) -> int:
        return self.out_ch * self.size_out ** 3


def _pad(k: int, s: int) -> int:
    """MONAI dynunet_block.get_padding: (k - s + 1) / 2, truncated."""
    return max(0, (k - s + 1) // 2)


class _Builder:
    def __init__(self, channels: int, size: int):
        self.c, self.n = channels, size
        self.layers: list[Layer3d] = []

    def conv(self, stage, name, out_ch, k, stride=1, bias=False) -> None:
        n = (self.n + 2 * _pad(k, stride) - k) // stride + 1
        self.layers.append(Layer3d("conv", stage, self.c, out_ch, k, stride, self.n, n, name, bias))
        self.c, self.n = out_ch, n

    def up(self, stage, name, out_ch, s) -> None:
        n = self.n * s                       # transposed conv, kernel = stride, no padding
        self.layers.append(Layer3d("conv_transpose", stage, self.c, out_ch, s, s, self.n, n, name))
        self.c, self.n = out_ch, n

    def same(self, kind, stage, name, ch=None) -> None:
        ch = self.c if ch is None else ch
        self.layers.append(Layer3d(kind, stage, ch, ch, 1, 1, self.n, self.n, name))

    def block(self, a: Unet3dArch, stage, name, out_ch, stride) -> None:
        """UnetBasicBlock: convs_per_stage x (conv -> norm -> lrelu), the first with ``stride``."""
        for j in range(a.convs_per_stage):
            self.conv(stage, f"{name}.conv{j + 1}", out_ch, a.kernel, stride if j == 0 else 1)
            self.same("norm", stage, f"{name}.norm{j + 1}")
            self.same("act", stage, f"{name}.lrelu")


def _module(i: int, n_stages: int) -> str:
    if i == 0:
        return "input_block"
    return "bottleneck" if i == n_stages - 1 else f"downsamples.{i - 1}"


def unet3d_layers(a: Unet3dArch) -> list[Layer3d]:
    """Every op of one patch's forward pass, in execution order."""
    b = _Builder(a.in_channels, a.patch_size)
    n_st = len(a.filters)
    skips: list[tuple[int, int]] = []                  # (channels, size) of each encoder stage's output
    for i, (f, s) in enumerate(zip(a.filters, a.strides)):
        b.block(a, f"enc{i}", _module(i, n_st), f, s)
        skips.append((b.c, b.n))
    for j, i in enumerate(range(n_st - 1, 0, -1)):     # upsamples.0 is the deepest
        stage, name, out_ch = f"dec{j + 1}", f"upsamples.{j}", a.filters[i - 1]
        b.up(stage, f"{name}.transp_conv", out_ch, a.strides[i])
        skip_c, skip_n = skips[i - 1]
        if (skip_c, skip_n) != (b.c, b.n):
            raise ValueError(f"decoder stage {stage}: upsampled {b.c}x{b.n}^3 does not match skip {skip_c}x{skip_n}^3")
        b.c = 2 * out_ch
        b.same("concat", stage, f"{name}.cat")         # torch.cat((out, skip), dim=1) copies both
        b.block(a, stage, f"{name}.conv_block", out_ch, 1)
    b.conv("head", "output_block.conv.conv", a.n_classes, 1, bias=True)
    return b.layers


def unet3d_params(a: Unet3dArch) -> int:
    return sum(layer.params() for layer in unet3d_layers(a))


def unet3d_macs(a: Unet3dArch) -> int:
    """Conv and transposed-conv MACs per patch (fvcore's conv count; see the module docstring)."""
    return sum(layer.macs() for layer in unet3d_layers(a))


def unet3d_peak_live_elems(a: Unet3dArch) -> int:
    """Largest activation footprint of one patch during an eager forward pass, in elements: a layer's input and
    output plus the encoder outputs still held for skip connections at that point."""
    layers = unet3d_layers(a)
    n_st = len(a.filters)
    held: dict[int, int] = {}                          # encoder stage index -> elements of its skip tensor
    peak = 0
    for prev, layer in zip([None] + layers[:-1], layers):
        if prev is not None and prev.stage != layer.stage and prev.stage.startswith("enc"):
            i = int(prev.stage[3:])
            if i < n_st - 1:                           # the bottleneck's output is no skip
                held[i] = prev.output_elems()
        if layer.kind == "concat":                     # dec1 consumes enc(n-2), dec2 enc(n-3), ...
            held.pop(n_st - 1 - int(layer.stage[3:]), None)
        peak = max(peak, layer.input_elems() + layer.output_elems() + sum(held.values()))
    return peak
