"""FLOP counting with PyTorch's own counter, plus formulas for operators it does not count.

``FlopCounterMode`` counts 2 FLOPs per multiply-add for convolutions and matrix products. It
counts zero for bilinear sampling (``grid_sample``, the warp) and bilinear upsampling (the
task network's last layer); both are registered here as 4 multiply-adds per output element
(one per bilinear tap). Element-wise ops (fusion by max/average, ReLU, softmax) are not
counted, as in the papers' multiply-add convention. torchvision's ``ps_roi_align`` (4
multiply-adds per bilinear sample) and ``deform_conv2d`` (the convolution plus one bilinear
sample per input channel, tap and position) are registered too. Reports show GMACs = FLOPs / 2.
"""

from __future__ import annotations

from math import prod
from typing import Any

import torch
import torchvision  # noqa: F401  (registers torch.ops.torchvision)
from torch.utils.flop_counter import FlopCounterMode, flop_registry, register_flop_formula

aten = torch.ops.aten
BILINEAR_MACS_PER_OUTPUT = 4

_BILINEAR_OPS = [aten.grid_sampler_2d, aten.upsample_bilinear2d]


def _bilinear_flops(*args: Any, out_shape: Any = None, **kwargs: Any) -> int:
    return 2 * BILINEAR_MACS_PER_OUTPUT * prod(out_shape)


for _op in _BILINEAR_OPS:
    if _op not in flop_registry:
        register_flop_formula(_op)(_bilinear_flops)


def flop_counter() -> FlopCounterMode:
    """A silent counter with the formulas above registered."""
    return FlopCounterMode(display=False)


def count_parameters(modules: dict[str, torch.nn.Module]) -> int:
    """Distinct parameters across ``modules`` (shared tensors counted once)."""
    seen: dict[int, int] = {}
    for module in modules.values():
        for parameter in module.parameters():
            seen[id(parameter)] = parameter.numel()
    return sum(seen.values())


# torchvision's detection operators also count zero under FlopCounterMode (checked): the R-FCN
# detector's position-sensitive RoI align and the deformable convolution of its DCN variant.
_TORCHVISION = torch.ops.torchvision


def _ps_roi_align_flops(
    input: torch.Tensor,
    rois: torch.Tensor,
    spatial_scale: float,
    pooled_height: int,
    pooled_width: int,
    sampling_ratio: int,
    out_val: Any = None,
    **kwargs: Any,
) -> int:
    """Each output bin averages a grid of bilinear samples: 4 multiply-adds per sample. The
    grid is ``sampling_ratio`` squared, or (adaptive, ratio <= 0) ceil(RoI size / bins) per side
    with the RoI at least one feature cell, as torchvision's kernel."""
    channels = input.shape[1] // (pooled_height * pooled_width)
    if sampling_ratio > 0:
        samples = len(rois) * sampling_ratio**2
    elif rois.is_meta:
        raise ValueError(
            "ps_roi_align FLOPs: an adaptive sampling_ratio (<= 0) needs the RoI coordinates, "
            "which meta tensors lack; count with real tensors or a fixed sampling_ratio."
        )
    else:
        size = ((rois[:, 3:5] - rois[:, 1:3]) * spatial_scale).clamp(min=1.0)
        grid_w = torch.ceil(size[:, 0] / pooled_width)
        grid_h = torch.ceil(size[:, 1] / pooled_height)
        samples = int((grid_w * grid_h).sum())
    return 2 * BILINEAR_MACS_PER_OUTPUT * channels * pooled_height * pooled_width * samples


def _deform_conv2d_flops(
    input_shape: Any, weight_shape: Any, *args: Any, out_shape: Any = None, **kwargs: Any
) -> int:
    """The convolution's multiply-adds (as aten's convolution formula) plus one bilinear
    sample (4 multiply-adds) per input channel, kernel tap and output position."""
    batch, in_channels = input_shape[0], input_shape[1]
    taps = weight_shape[2] * weight_shape[3]
    positions = out_shape[2] * out_shape[3]
    convolution = batch * out_shape[1] * positions * weight_shape[1] * taps
    sampling = BILINEAR_MACS_PER_OUTPUT * batch * in_channels * taps * positions
    return 2 * (convolution + sampling)


if _TORCHVISION.ps_roi_align not in flop_registry:
    register_flop_formula(_TORCHVISION.ps_roi_align, get_raw=True)(_ps_roi_align_flops)
if _TORCHVISION.deform_conv2d not in flop_registry:
    register_flop_formula(_TORCHVISION.deform_conv2d)(_deform_conv2d_flops)
