"""Box geometry in the ILSVRC convention (inclusive pixel corners, width = x2 - x1 + 1), and
FGFA's per-object speed measure, the motion IoU (docs/datasets.md §3.6-3.7)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

MOTION_IOU_WINDOW = 10


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, M) IoU of (N, 4) and (M, 4) xyxy boxes with inclusive corners (+1 areas)."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    iw = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]) + 1
    ih = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]) + 1
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    area_a = (a[:, 2] - a[:, 0] + 1) * (a[:, 3] - a[:, 1] + 1)
    area_b = (b[:, 2] - b[:, 0] + 1) * (b[:, 3] - b[:, 1] + 1)
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def motion_iou(
    boxes: Sequence[np.ndarray], track_ids: Sequence[np.ndarray], window: int = MOTION_IOU_WINDOW
) -> list[np.ndarray]:
    """Per frame, per object: mean IoU of the object's box with its own boxes (same track id)
    in the other frames within +-``window`` (FGFA's motion IoU). NaN for an object seen in no
    other frame of the window. ``boxes[t]`` is (M_t, 4), ``track_ids[t]`` (M_t,)."""
    by_track: list[dict[int, np.ndarray]] = [
        {int(t): np.asarray(b, np.float64) for t, b in zip(ids, frame_boxes)}
        for frame_boxes, ids in zip(boxes, track_ids)
    ]
    out = []
    for t, frame in enumerate(by_track):
        values = np.full(len(frame), np.nan, np.float32)
        near = range(max(0, t - window), min(len(by_track), t + window + 1))
        for k, (track, box) in enumerate(frame.items()):
            others = [by_track[u][track] for u in near if u != t and track in by_track[u]]
            if others:
                values[k] = float(box_iou(box[None], np.stack(others)).mean())
        out.append(values)
    return out
