"""FLOP counting with PyTorch's own counter, plus formulas for operators it does not count.

``FlopCounterMode`` counts 2 FLOPs per multiply-add for convolutions and matrix products. It
counts zero for bilinear sampling (``grid_sample``, the warp) and bilinear upsampling (the
task network's last layer); both are registered here as 4 multiply-adds per output element
(one per bilinear tap). Element-wise ops (fusion by max/average, ReLU, softmax) are not
counted, as in the papers' multiply-add convention. Reports show GMACs = FLOPs / 2.
"""

from __future__ import annotations

from math import prod
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode, flop_registry, register_flop_formula

aten = torch.ops.aten
BILINEAR_MACS_PER_OUTPUT = 4

_BILINEAR_OPS = [aten.grid_sampler_2d, aten.upsample_bilinear2d]


def _bilinear_flops(*args: Any, out_shape: Any = None, **kwargs: Any) -> int:
    return 2 * BILINEAR_MACS_PER_OUTPUT * prod(out_shape)


for _op in _BILINEAR_OPS:
    if _op.default not in flop_registry:
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
