"""Deformable convolution (Dai et al. 2017, "Deformable Convolutional Networks") on
torchvision's ``deform_conv2d``, shared by the DCN variants: Deformable R-FCN's res5
(vidbench.methods.detection.rfcn) and Deformable DeepLab's conv5 (vidbench.methods.segmentation.deeplab, seed 000).
"""

from __future__ import annotations

from torch import Tensor, nn
from torchvision.ops import deform_conv2d


class DeformableConv(nn.Module):
    """A deformable 3x3 conv (Dai et al. 2017) in place of ``conv``: it keeps the conv's weight,
    stride, padding and dilation; offsets (2 per tap and group) come from a 3x3 conv initialised
    to zero, so it computes exactly ``conv`` until trained (Deformable R-FCN's res5 and
    Deformable DeepLab's conv5: 4 offset groups, offsets from a 3x3 conv with bias)."""

    def __init__(self, conv: nn.Conv2d, groups: int) -> None:
        super().__init__()
        if conv.groups != 1 or conv.bias is not None:
            raise ValueError(f"DeformableConv: expected a grouped-free conv without bias: {conv}")
        self.weight = conv.weight
        self.stride, self.padding, self.dilation = conv.stride, conv.padding, conv.dilation
        taps = conv.kernel_size[0] * conv.kernel_size[1]
        self.offset = nn.Conv2d(
            conv.in_channels,
            2 * groups * taps,
            conv.kernel_size,
            stride=conv.stride,
            padding=conv.padding,
            dilation=conv.dilation,
        )
        nn.init.zeros_(self.offset.weight)
        nn.init.zeros_(self.offset.bias)

    def forward(self, x: Tensor) -> Tensor:
        return deform_conv2d(
            x,
            self.offset(x),
            self.weight,
            stride=self.stride,
            padding=self.padding,
            dilation=self.dilation,
        )
