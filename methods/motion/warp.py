"""Feature warping with a block motion field (seed 000, sec. 3.3 and 3.5).

Sign convention. A codec field d = src - dst says that the block at p in the current frame
came from p + d in the previous frame (vidbench.datasets.video.motion). Hence:

* forward propagation, previous-frame features to the current frame:
  ``warp(prev_features, d_current, stride)`` -- the seed's "warp with -mv", its mv being
  dst - src;
* backward step of feature interpolation, features of frame k+1 carried back to frame k:
  ``warp(next_features, -d_next, stride)``, a gather approximation of splatting frame k+1
  forward (the displacement is read at the destination instead of the source cell).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def warp(features: torch.Tensor, displacement: torch.Tensor, stride: float) -> torch.Tensor:
    """Bilinearly sample `features` (N,C,h,w) at p + displacement/stride for every cell p.

    displacement: (N,2,h,w) or (2,h,w) float, (dx, dy) in pixels, at the same h x w grid as
    features, whose cell (i, j) is centred at ((j+0.5)*stride, (i+0.5)*stride) pixels.
    Samples outside the map take the border value. Differentiable in features and
    displacement.
    """
    if features.dim() != 4:
        raise ValueError(f"warp: features must be (N, C, h, w), got {tuple(features.shape)}")
    n, _, h, w = features.shape
    if displacement.dim() == 3:
        displacement = displacement.unsqueeze(0)
    if displacement.shape[1:] != (2, h, w) or displacement.shape[0] not in (1, n):
        raise ValueError(
            f"warp: displacement must be (N, 2, h, w) or (2, h, w) matching features "
            f"{tuple(features.shape)}, got {tuple(displacement.shape)}"
        )
    if stride <= 0:
        raise ValueError(f"warp: stride must be positive, got {stride}")
    offset = displacement.to(device=features.device, dtype=features.dtype) / stride
    cols = torch.arange(w, device=features.device, dtype=features.dtype)
    rows = torch.arange(h, device=features.device, dtype=features.dtype)
    x = cols.view(1, 1, w) + offset[:, 0]  # (N, h, w) sample position in cells
    y = rows.view(1, h, 1) + offset[:, 1]
    # align_corners=False: cell j's centre sits at normalised (2j + 1)/w - 1, so a cell of
    # displacement moves the sample by exactly one cell.
    grid = torch.stack(((2 * x + 1) / w - 1, (2 * y + 1) / h - 1), dim=-1)
    grid = grid.expand(n, h, w, 2)
    return F.grid_sample(
        features, grid, mode="bilinear", padding_mode="border", align_corners=False
    )
