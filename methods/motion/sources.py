"""Motion sources: anything that says where each part of a frame came from in another frame.

Every source returns the same thing, a displacement field that ``vidbench.methods.motion.warp.warp``
consumes: for each cell of the *current* frame, the offset in pixels to where its content
sits in the *reference* frame (reference position - current position; the codec's
``src - dst``). Forward propagation of reference features to the current frame is then
``warp(reference_features, motion.displacement, stride)``.

Sources by name (``vidbench.registry.MOTION_SOURCES``): ``mv`` codec block motion vectors (free, consecutive frames
only), ``flownet`` the trainable FlowNet-style network of DFF (with its scale field), ``dis``
OpenCV's DIS optical flow, ``raft`` torchvision's RAFT from a local weights file.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch.nn import functional as F
from vidbench.api import Frame
from vidbench.registry import MOTION_SOURCES


@dataclass(frozen=True)
class Motion:
    """A displacement field on a grid of cells, and optionally DFF's per-channel scale field.

    displacement: (2, h, w) float32 pixels (dx, dy), reference position - current position.
    valid: (h, w) bool or None; False where the source has no estimate (kept at zero).
    scale: (C, h, w) float32 or None; propagated features are multiplied by it (DFF).
    """

    displacement: torch.Tensor
    valid: torch.Tensor | None = None
    scale: torch.Tensor | None = None


class MotionSource(abc.ABC):
    """Two frames (or the codec's side data) in, a ``Motion`` on the requested grid out."""

    name: ClassVar[str]
    pairwise: ClassVar[bool]  # True: relates any two frames; False: only a frame to its predecessor

    @abc.abstractmethod
    def estimate(self, current: Frame, reference: Frame, stride: int) -> Motion:
        """Motion of ``current`` relative to ``reference`` on cells of ``stride`` pixels
        (ceil(H/stride) x ceil(W/stride), the last cells partial, like a stride-16 feature
        map); ``stride=1`` is the pixel grid."""

    def modules(self) -> dict[str, torch.nn.Module]:
        """Networks the source runs (for parameter counts); none for classical sources."""
        return {}


def regrid(
    field: torch.Tensor,
    valid: torch.Tensor | None,
    cell: int,
    stride: int,
    frame_hw: tuple[int, int],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Move a (2, h, w) field on cells of ``cell`` px to cells of ``stride`` px: valid values
    are averaged when coarsening (an integer factor), repeated when refining. Cells without a
    valid value get zero displacement and ``valid`` False."""
    out_hw = (-(-frame_hw[0] // stride), -(-frame_hw[1] // stride))
    mask = torch.ones(field.shape[-2:]) if valid is None else valid.to(field.dtype)
    if stride >= cell:
        if stride % cell:
            raise ValueError(f"Cannot pool {cell}-px cells onto {stride}-px cells.")
        factor = stride // cell
        total = F.avg_pool2d((field * mask)[None], factor, ceil_mode=True)[0]
        count = F.avg_pool2d(mask[None, None], factor, ceil_mode=True)[0, 0]
        field, mask = total / count.clamp_min(1e-6), count
    else:
        if cell % stride:
            raise ValueError(f"Cannot repeat {cell}-px cells onto {stride}-px cells.")
        factor = cell // stride
        field = (field * mask).repeat_interleave(factor, -1).repeat_interleave(factor, -2)
        mask = mask.repeat_interleave(factor, -1).repeat_interleave(factor, -2)
    field, mask = field[:, : out_hw[0], : out_hw[1]], mask[: out_hw[0], : out_hw[1]]
    return field * (mask > 0), mask > 0


class CodecMotion(MotionSource):
    """The decoder's block motion vectors of ``current`` (free: no computation on frames)."""

    name = "mv"
    pairwise = False

    def estimate(self, current: Frame, reference: Frame, stride: int) -> Motion:
        if reference.index != current.index - 1:
            raise ValueError(
                f"Codec motion vectors relate a frame to its predecessor only; asked for frame "
                f"{current.index} against {reference.index}. Use an incremental chain."
            )
        hw = (current.image.shape[-2], current.image.shape[-1])
        if current.motion is None or current.motion_valid is None:
            grid = (-(-hw[0] // stride), -(-hw[1] // stride))
            return Motion(torch.zeros(2, *grid), torch.zeros(grid, dtype=torch.bool))
        displacement, valid = regrid(
            current.motion, current.motion_valid, current.motion_grid, stride, hw
        )
        return Motion(displacement, valid)


def build_source(name: str, **kwargs: Any) -> MotionSource:
    """The motion source registered as ``name`` (vidbench.registry.MOTION_SOURCES), built."""
    return MOTION_SOURCES.get(name)(**kwargs)
