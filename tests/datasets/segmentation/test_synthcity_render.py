"""synthcity renderer: shapes, determinism, labels, motion, and the ground-truth forward and
backward flow checked by warping one frame onto the other and by their mutual consistency."""

from __future__ import annotations

import time
from functools import cache

import numpy as np
from vidbench.datasets.segmentation.synthcity.render import (
    CLASS_NAMES,
    RenderedSnippet,
    render_snippet,
)

ROAD, BUILDING, VEGETATION, SKY, PERSON, CAR = 0, 2, 8, 10, 11, 13
SEEDS = (0, 1, 2, 3)


@cache
def snippet(seed: int) -> RenderedSnippet:
    return render_snippet(seed)  # 128 x 256, 30 frames


def backward_warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Sample `image` (H, W, 3) at (x + dx, y + dy) with bilinear interpolation."""
    h, w = image.shape[:2]
    yy, xx = np.mgrid[:h, :w].astype(np.float64)
    x = np.clip(xx + flow[0], 0, w - 1)
    y = np.clip(yy + flow[1], 0, h - 1)
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    fx, fy = (x - x0)[..., None], (y - y0)[..., None]
    im = image.astype(np.float64)
    top = im[y0, x0] * (1 - fx) + im[y0, x1] * fx
    bottom = im[y1, x0] * (1 - fx) + im[y1, x1] * fx
    return top * (1 - fy) + bottom * fy


def bilinear(image: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Sample `image` (..., H, W) at the points (x, y), clamped to the image."""
    h, w = image.shape[-2:]
    x, y = np.clip(x, 0, w - 1), np.clip(y, 0, h - 1)
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    fx, fy = x - x0, y - y0
    top = image[..., y0, x0] * (1 - fx) + image[..., y0, x1] * fx
    bottom = image[..., y1, x0] * (1 - fx) + image[..., y1, x1] * fx
    return top * (1 - fy) + bottom * fy


def warp_errors(r: RenderedSnippet, steps) -> tuple[float, float, float]:
    """Mean abs error against frame t of: frame t+1 warped by the flow (valid pixels), frame
    t+1 as is (valid pixels), frame t+1 warped (pixels marked invalid)."""
    warped, still, invalid = [], [], []
    for t in steps:
        cur = r.frames[t].astype(np.float64)
        err = np.abs(backward_warp(r.frames[t + 1], r.flow[t]) - cur).mean(-1)
        valid = r.flow_valid[t]
        warped.append(err[valid].mean())
        still.append(np.abs(r.frames[t + 1] - cur).mean(-1)[valid].mean())
        invalid.append(err[~valid].mean())
    return float(np.mean(warped)), float(np.mean(still)), float(np.mean(invalid))


def test_shapes_and_dtypes():
    r = render_snippet(0, 72, 136, 6)
    assert r.frames.shape == (6, 72, 136, 3) and r.frames.dtype == np.uint8
    assert r.labels.shape == (6, 72, 136) and r.labels.dtype == np.uint8
    assert r.flow.shape == (5, 2, 72, 136) and r.flow.dtype == np.float32
    assert r.flow_valid.shape == (5, 72, 136) and r.flow_valid.dtype == bool
    assert np.isfinite(r.flow).all()
    assert r.backward_flow.shape == (5, 2, 72, 136) and r.backward_flow.dtype == np.float32
    assert r.backward_valid.shape == (5, 72, 136) and r.backward_valid.dtype == bool
    assert np.isfinite(r.backward_flow).all()
    one = render_snippet(0, 16, 24, 1)
    assert one.frames.shape == (1, 16, 24, 3) and one.flow.shape == (0, 2, 16, 24)
    assert one.backward_flow.shape == (0, 2, 16, 24) and one.backward_valid.shape == (0, 16, 24)


def test_deterministic_in_seed():
    a, b = render_snippet(5, 48, 96, 4), render_snippet(5, 48, 96, 4)
    fields = ("frames", "labels", "flow", "flow_valid", "backward_flow", "backward_valid")
    for name in fields:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    c = render_snippet(6, 48, 96, 4)
    assert np.abs(a.frames.astype(int) - c.frames).mean() > 10


def test_labels_are_known_classes_and_scenes_are_populated():
    present = {"road": [], "building/vegetation": [], "sky": [], "car/person": []}
    for seed in SEEDS:
        labels = snippet(seed).labels
        assert set(np.unique(labels).tolist()) <= set(CLASS_NAMES)  # in particular, no 255
        flat = labels.reshape(len(labels), -1)
        for name, ids in zip(present, ((ROAD,), (BUILDING, VEGETATION), (SKY,), (CAR, PERSON))):
            present[name] += [np.isin(frame, ids).any() for frame in flat]
    for name, hits in present.items():
        assert np.mean(hits) >= 0.9, name


def test_the_camera_moves_through_the_scene():
    moving = 0
    for seed in SEEDS:
        r = snippet(seed)
        diff = np.abs(np.diff(r.frames.astype(np.int16), axis=0)).mean(axis=(1, 2, 3))
        assert (diff > 3.0).mean() >= 0.9
        road = r.labels[:-1] == ROAD
        moving += np.hypot(r.flow[:, 0], r.flow[:, 1])[road].mean() > 1.0
    assert moving >= 3


def test_flow_warps_the_next_frame_onto_the_current_one():
    for seed in SEEDS:
        warped, still, invalid = warp_errors(snippet(seed), range(0, 29, 3))
        assert warped * 2 <= still, (seed, warped, still)
        # Pixels marked invalid (occluded or leaving the view) are the ones flow cannot explain.
        assert invalid >= 2.5 * warped, (seed, warped, invalid)


def test_points_that_leave_the_view_are_invalid():
    r = snippet(0)
    h, w = r.labels.shape[1:]
    yy, xx = np.mgrid[:h, :w]
    x, y = xx + r.flow[:, 0], yy + r.flow[:, 1]
    outside = (x < -0.5) | (x > w - 0.5) | (y < -0.5) | (y > h - 0.5)
    assert outside.any() and not (r.flow_valid & outside).any()
    assert 0.5 < r.flow_valid.mean() < 0.99


def test_backward_flow_warps_the_previous_frame_onto_the_next_one():
    """Sampling frame t at (x + dx, y + dy) of the backward flow reproduces frame t+1."""
    for seed in SEEDS:
        r = snippet(seed)
        warped, still, invalid = [], [], []
        for t in range(1, 29, 3):
            nxt = r.frames[t + 1].astype(np.float64)
            err = np.abs(backward_warp(r.frames[t], r.backward_flow[t]) - nxt).mean(-1)
            valid = r.backward_valid[t]
            warped.append(err[valid].mean())
            still.append(np.abs(r.frames[t] - nxt).mean(-1)[valid].mean())
            invalid.append(err[~valid].mean())
        warped, still, invalid = np.mean(warped), np.mean(still), np.nanmean(invalid)
        assert warped * 2 <= still, (seed, warped, still)
        # Disoccluded pixels and those entering the view are what the backward flow cannot explain.
        assert invalid >= 2.5 * warped, (seed, warped, invalid)


def test_forward_and_backward_flow_are_consistent():
    """Following the forward flow from frame t and reading the backward flow of frame t+1 there
    returns to the start wherever both are valid; points from outside frame t are invalid."""
    for seed in SEEDS[:2]:
        r = snippet(seed)
        h, w = r.labels.shape[1:]
        yy, xx = np.mgrid[:h, :w].astype(np.float64)
        errors = []
        for t in range(0, 29, 2):
            x, y = xx + r.flow[t, 0], yy + r.flow[t, 1]
            ri = np.clip(np.rint(y), 0, h - 1).astype(int)
            rj = np.clip(np.rint(x), 0, w - 1).astype(int)
            both = r.flow_valid[t] & r.backward_valid[t][ri, rj]
            back = bilinear(r.backward_flow[t].astype(np.float64), x, y)
            errors.append(np.hypot(x + back[0] - xx, y + back[1] - yy)[both])
            bx, by = xx + r.backward_flow[t, 0], yy + r.backward_flow[t, 1]
            outside = (bx < -0.5) | (bx > w - 0.5) | (by < -0.5) | (by > h - 0.5)
            assert not (r.backward_valid[t] & outside).any()
        errors = np.concatenate(errors)
        assert len(errors) > 0.5 * 15 * h * w
        assert np.median(errors) < 0.5 and np.percentile(errors, 90) < 0.5, seed
    # The two flows are computed separately, not one from the other.
    assert not np.allclose(r.backward_flow, -r.flow, atol=0.5)


def test_cars_and_people_enter_and_leave_the_view():
    """Count car/person pixels of frame t+1 that no valid flow vector from the same class in
    frame t reaches (entering the frame or coming out from behind something), and pixels of
    frame t whose point is hidden or gone in t+1."""
    appeared, vanished = [], []
    for seed in SEEDS:
        r = snippet(seed)
        h, w = r.labels.shape[1:]
        new = gone = 0
        for t in range(len(r.flow)):
            for cls in (CAR, PERSON):
                src = (r.labels[t] == cls) & r.flow_valid[t]
                ys, xs = np.nonzero(src)
                tx = np.rint(xs + r.flow[t, 0][src]).astype(int)
                ty = np.rint(ys + r.flow[t, 1][src]).astype(int)
                reached = np.zeros((h, w), bool)
                for dy in (-1, 0, 1):
                    for dx in (-1, 0, 1):
                        reached[np.clip(ty + dy, 0, h - 1), np.clip(tx + dx, 0, w - 1)] = True
                new += int(((r.labels[t + 1] == cls) & ~reached).sum())
                gone += int(((r.labels[t] == cls) & ~r.flow_valid[t]).sum())
        appeared.append(new)
        vanished.append(gone)
    assert sum(n >= 300 for n in appeared) >= 3, appeared
    assert max(appeared) >= 3000, appeared
    assert min(vanished) >= 2000, vanished


def test_size_not_a_multiple_of_16():
    r = render_snippet(2, 72, 136, 10)
    assert r.frames.shape == (10, 72, 136, 3)
    assert {ROAD, SKY} <= set(np.unique(r.labels).tolist())
    warped, still, _ = warp_errors(r, range(9))
    assert warped * 2 <= still


def test_same_world_at_every_resolution():
    low, high = render_snippet(1, 64, 128, 3), render_snippet(1, 128, 256, 3)
    # Low-res pixel centres fall between high-res ones: accept either neighbour.
    same = (low.labels == high.labels[:, ::2, ::2]) | (low.labels == high.labels[:, 1::2, 1::2])
    assert same.mean() > 0.95


def test_render_time():
    start = time.perf_counter()
    render_snippet(9)
    assert time.perf_counter() - start < 6.0  # the budget is 1.5 s; this only catches blow-ups
