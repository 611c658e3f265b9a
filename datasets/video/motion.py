"""Rasterise codec motion-vector records into a dense per-block displacement field.

Implements docs/datasets.md §9.3. Convention: a field holds, for each block of the
current frame, ``(dx, dy) = (motion_x, motion_y) / motion_scale = src - dst`` in pixels, i.e.
where the block's content was in the reference (previous) frame. The forward flow
previous -> current is the negative. Cells no record covers (intra blocks, frames without
vectors) have displacement 0 and ``valid`` False: 0 there means "unknown", not "static".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

_FIELDS = ("source", "w", "h", "dst_x", "dst_y", "motion_x", "motion_y", "motion_scale")


@dataclass(frozen=True, eq=False)
class MotionField:
    """Per-block displacement to the previous frame: where each block's content came from.

    vectors: (2, gh, gw) float32, (dx, dy) in pixels = (motion_x, motion_y)/motion_scale.
    valid: (gh, gw) bool; False for intra blocks and frames without vectors (vectors 0 there).
    grid: cell size in pixels; cell (i, j) covers rows [i*grid, (i+1)*grid) and columns
        [j*grid, (j+1)*grid), clipped to the frame, so gh = ceil(H/grid), gw = ceil(W/grid).
    frame_size: (H, W) of the frame.
    """

    vectors: np.ndarray
    valid: np.ndarray
    grid: int
    frame_size: tuple[int, int]


def rasterise(
    records: np.ndarray | None, height: int, width: int, grid: int = 8, source: int = -1
) -> MotionField:
    """Dense block field of one frame's AVMotionVector records for one reference list.

    ``source < 0`` selects list 0 (records with source < 0), ``source > 0`` list 1; the two
    are never mixed. Each record's block ``[dst - size/2, dst + size/2)`` is clipped to the
    frame; a cell takes the area-weighted mean of the blocks that cover it (one block for
    grid 8 with H.264, up to four 8x8 blocks for grid 16) and is valid if any block does.
    Blocks of one list do not overlap in H.264; if they did, the later record would win.
    ``records=None`` (an I-frame) gives an all-invalid field (docs/datasets.md §9.3 step 4).
    """
    if height <= 0 or width <= 0:
        raise ValueError(f"rasterise: frame size must be positive, got {height}x{width}")
    if grid <= 0:
        raise ValueError(f"rasterise: grid must be a positive number of pixels, got {grid}")
    if source == 0:
        raise ValueError("rasterise: source must be < 0 (list 0) or > 0 (list 1), got 0")
    gh, gw = math.ceil(height / grid), math.ceil(width / grid)
    empty = MotionField(
        vectors=np.zeros((2, gh, gw), np.float32),
        valid=np.zeros((gh, gw), bool),
        grid=grid,
        frame_size=(height, width),
    )
    if records is None:
        return empty
    missing = [name for name in _FIELDS if name not in (records.dtype.names or ())]
    if missing:
        raise ValueError(
            f"rasterise: records lack the AVMotionVector fields {missing}; pass "
            f"MotionVectors.to_ndarray() as decode_with_motion returns it"
        )
    records = records[np.sign(records["source"]) == np.sign(source)]
    if len(records) == 0:
        return empty
    scale = records["motion_scale"].astype(np.float32)
    if (scale == 0).any():
        raise ValueError("rasterise: a record has motion_scale 0; the records are corrupt")
    block_w = records["w"].astype(np.int64)
    block_h = records["h"].astype(np.int64)
    x0 = records["dst_x"].astype(np.int64) - block_w // 2
    y0 = records["dst_y"].astype(np.int64) - block_h // 2
    dx = records["motion_x"].astype(np.float32) / scale
    dy = records["motion_y"].astype(np.float32) / scale

    # Paint on a canvas of u-pixel units, u the largest size dividing the grid and every block
    # edge (8 for H.264), so blocks and cells are both whole numbers of units.
    unit = int(np.gcd.reduce(np.concatenate([[grid], x0, y0, block_w, block_h])))
    per_cell = grid // unit
    units_h, units_w = gh * per_cell, gw * per_cell
    inside_h, inside_w = math.ceil(height / unit), math.ceil(width / unit)
    canvas = np.zeros((2, units_h, units_w), np.float32)
    painted = np.zeros((units_h, units_w), bool)
    for shape_w, shape_h in sorted(set(zip(block_w.tolist(), block_h.tolist()))):
        pick = (block_w == shape_w) & (block_h == shape_h)
        # rows (R, h/u, 1) and cols (R, 1, w/u) of the units each block of this shape covers
        rows = (y0[pick] // unit)[:, None, None] + np.arange(shape_h // unit)[None, :, None]
        cols = (x0[pick] // unit)[:, None, None] + np.arange(shape_w // unit)[None, None, :]
        rows, cols = np.broadcast_arrays(rows, cols)
        keep = (rows >= 0) & (rows < inside_h) & (cols >= 0) & (cols < inside_w)
        canvas[0, rows[keep], cols[keep]] = np.broadcast_to(dx[pick, None, None], keep.shape)[keep]
        canvas[1, rows[keep], cols[keep]] = np.broadcast_to(dy[pick, None, None], keep.shape)[keep]
        painted[rows[keep], cols[keep]] = True

    # Each unit weighs its area inside the frame; cells average their painted units.
    weight_y = _clipped_lengths(units_h, unit, height)
    weight_x = _clipped_lengths(units_w, unit, width)
    weight = (weight_y[:, None] * weight_x[None, :]).astype(np.float32) * painted
    total = weight.reshape(gh, per_cell, gw, per_cell).sum(axis=(1, 3))
    summed = (canvas * weight).reshape(2, gh, per_cell, gw, per_cell).sum(axis=(2, 4))
    valid = total > 0
    vectors = np.where(valid, summed / np.where(valid, total, 1), 0).astype(np.float32)
    return MotionField(vectors=vectors, valid=valid, grid=grid, frame_size=(height, width))


def _clipped_lengths(count: int, step: int, extent: int) -> np.ndarray:
    """Lengths inside [0, extent) of the cells [k*step, (k+1)*step), k < count."""
    starts = np.arange(count) * step
    return np.clip(np.minimum(starts + step, extent) - starts, 0, step)
