"""A procedural recognition world: a video's class is the look of one small object moving
through clutter (numpy + OpenCV, deterministic from a seed).

What makes it a stand-in for the spatial and temporal redundancy AdaFocus exploits:
- ten classes, each a conjunction of a silhouette (disc, triangle, diamond, cross, crescent)
  and a colour family (red, yellow, green, blue, violet); every silhouette and every colour
  belongs to two classes, so neither cue alone names the class;
- the object covers 3-6% of the frame (its square extent) and carries a fine stripe texture;
  it moves smoothly along a curving path whose speed varies (1-3.5 px/frame at 112 px, modulated
  by +-35% within the video), over a textured background seen by a camera that pans in half
  the videos (spatial redundancy: most of each frame says nothing about the class);
- larger, untextured distractors of the same silhouettes and colour families (so they resemble
  the classes) are drawn independently of the label: a glance at the whole frame sees several
  class-like shapes and only the object says which class the video is;
- in 20-50% of the frames (planned per video in runs of 1-3 frames) the object is hidden by a
  foreground pillar of clutter sweeping across the view, or strongly motion-blurred (temporal
  redundancy: those frames carry little or no evidence); a frame counts as absent when less
  than a quarter of the silhouette shows;
- per-frame ground truth of the object: its box (inclusive pixel corners, the tight box of
  its full silhouette, hidden parts included) and a visibility state.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from vidbench.datasets.scenery import textured_panorama

SILHOUETTES = ("disc", "triangle", "diamond", "cross", "crescent")
# Colour family -> two RGB ends; a colour is drawn between them.
COLOUR_FAMILIES = {
    "red": ((205, 35, 35), (240, 85, 60)),
    "yellow": ((225, 195, 25), (250, 235, 95)),
    "green": ((35, 165, 55), (95, 215, 80)),
    "blue": ((35, 70, 205), (75, 135, 245)),
    "violet": ((150, 40, 195), (210, 95, 235)),
}
_FAMILIES = tuple(COLOUR_FAMILIES)
# (silhouette, colour family) per class: silhouette i with colours i and i + 2 (mod 5).
CLASSES = tuple((s, _FAMILIES[i]) for i, s in enumerate(SILHOUETTES)) + tuple(
    (s, _FAMILIES[(i + 2) % len(_FAMILIES)]) for i, s in enumerate(SILHOUETTES)
)
CLASS_NAMES = tuple(f"{colour}_{silhouette}" for silhouette, colour in CLASSES)

VISIBLE, ABSENT, BLURRED = 0, 1, 2
VISIBILITY_NAMES = ("visible", "absent", "blurred")
AREA_RANGE = (0.03, 0.06)  # the object's square extent as a fraction of the frame
REDUNDANT_RANGE = (0.2, 0.5)  # planned share of hidden or blurred frames per video
SPEED_RANGE = (1.0, 3.5)  # object speed in px/frame at 112-pixel frames
MIN_VISIBLE_FRACTION = 0.25  # below this share of its silhouette the object counts as absent
MAX_RUN = 3  # longest run of hidden or blurred frames
BLUR_SAMPLES = 9


@dataclass(frozen=True)
class ActionClip:
    """A rendered video: frames (T,H,W,3) uint8, its class, and the object's per-frame truth:
    boxes (T,4) float32 xyxy inclusive, visibility (T,) uint8 (VISIBLE/ABSENT/BLURRED) and the
    share of its silhouette not hidden (T,) float32."""

    frames: np.ndarray
    label: int
    boxes: np.ndarray
    visibility: np.ndarray
    visible_fraction: np.ndarray


@dataclass(frozen=True)
class _Look:
    """How the object is drawn: class, colour, stripe texture and spin."""

    silhouette: str
    colour: np.ndarray
    stripes: float
    stripe_angle: float
    angle: float
    spin: float


def _shape_mask(silhouette: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Inside-test of a silhouette in local coordinates u, v in [-1, 1]."""
    if silhouette == "disc":
        return u**2 + v**2 < 1
    if silhouette == "triangle":
        return (v < 0.8) & (np.abs(u) < (v + 1) / 1.8)
    if silhouette == "diamond":
        return np.abs(u) + np.abs(v) < 1
    if silhouette == "cross":
        arm = 0.34
        return ((np.abs(u) < arm) & (np.abs(v) < 1)) | ((np.abs(v) < arm) & (np.abs(u) < 1))
    return (u**2 + v**2 < 1) & ((u - 0.5) ** 2 + (v + 0.15) ** 2 > 0.55)  # crescent


def _family_colour(rng: np.random.Generator, family: str) -> np.ndarray:
    """A colour of ``family`` with a random brightness."""
    low, high = (np.array(c, np.float32) for c in COLOUR_FAMILIES[family])
    return (low + (high - low) * float(rng.random())) * float(rng.uniform(0.85, 1.08))


def _local(
    centre: np.ndarray, half: float, angle: float, window: tuple[int, int, int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Rotated local coordinates (u, v), unit at ``half`` pixels, of the pixels of ``window``."""
    x0, y0, x1, y1 = window
    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    dx, dy = xs + 0.5 - centre[0], ys + 0.5 - centre[1]
    cos, sin = np.cos(angle), np.sin(angle)
    return (cos * dx + sin * dy) / half, (-sin * dx + cos * dy) / half


def _window(centre: np.ndarray, reach: float, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """Pixel window (x0, y0, x1, y1) around ``centre`` (which lies inside), clipped to (H, W)."""
    x0, y0 = max(int(np.floor(centre[0] - reach)), 0), max(int(np.floor(centre[1] - reach)), 0)
    x1 = min(int(np.ceil(centre[0] + reach)) + 1, size[1])
    y1 = min(int(np.ceil(centre[1] + reach)) + 1, size[0])
    return x0, y0, x1, y1


def _paint_distractors(rng: np.random.Generator, canvas: np.ndarray, half: float) -> None:
    """Larger, flat-shaded class-like shapes drawn into ``canvas`` independently of the label."""
    count = int(round(rng.uniform(4, 7) * canvas.shape[0] * canvas.shape[1] / 135**2))
    for _ in range(count):
        silhouette = SILHOUETTES[int(rng.integers(len(SILHOUETTES)))]
        colour = _family_colour(rng, _FAMILIES[int(rng.integers(len(_FAMILIES)))])
        size = half * float(rng.uniform(1.2, 1.8))
        centre = rng.uniform(0, 1, 2) * np.array([canvas.shape[1], canvas.shape[0]])
        window = _window(centre, size * 1.5, canvas.shape[:2])
        u, v = _local(centre, size, float(rng.uniform(0, 2 * np.pi)), window)
        mask = _shape_mask(silhouette, u, v)[..., None]
        x0, y0, x1, y1 = window
        shade = (0.9 + 0.08 * v)[..., None] * colour
        canvas[y0:y1, x0:x1] = np.where(mask, shade, canvas[y0:y1, x0:x1])


def _camera(rng: np.random.Generator, frames: int, margin: int, unit: float) -> np.ndarray:
    """(T, 2) top-left corner of the view in the canvas: still, or a slow pan within the margin."""
    offset = np.full((frames, 2), float(margin))
    if rng.random() < 0.5:
        return offset
    velocity = rng.normal(0, 0.4 * unit, 2)
    velocity *= min(1.0, 1.8 * margin / max(float(np.abs(velocity).max()) * (frames - 1), 1e-6))
    return offset + velocity * (np.arange(frames)[:, None] - (frames - 1) / 2)


def _object_path(
    rng: np.random.Generator, frames: int, size: tuple[int, int], half: float, unit: float
) -> np.ndarray:
    """(T, 2) screen centres: a curving path with varying speed, kept inside the frame."""
    t = np.arange(frames, dtype=np.float64)
    speed = rng.uniform(*SPEED_RANGE) * unit * (
        1 + 0.35 * np.sin(rng.uniform(0.2, 0.7) * t + rng.uniform(0, 2 * np.pi))
    )
    heading = rng.uniform(0, 2 * np.pi) + rng.normal(0, 0.12) * t
    steps = speed[:, None] * np.stack([np.cos(heading), np.sin(heading)], 1)
    path = np.concatenate([np.zeros((1, 2)), np.cumsum(steps[:-1], 0)])
    path -= path.min(0)
    low = 1.5 * half
    room = np.array([size[1], size[0]]) - 2 * low
    path *= min(1.0, float((room / np.maximum(path.max(0), 1e-6)).min()))
    return path + low + rng.uniform(0, 1, 2) * (room - path.max(0))


def _plan(rng: np.random.Generator, frames: int) -> np.ndarray:
    """(T,) planned states: short separated runs of ABSENT or BLURRED frames, 20-50% in all."""
    plan = np.full(frames, VISIBLE, np.uint8)
    remaining = max(1, int(round(rng.uniform(*REDUNDANT_RANGE) * frames)))
    for _ in range(8 * frames):
        if remaining <= 0:
            break
        length = int(rng.integers(1, min(MAX_RUN, remaining) + 1))
        start = int(rng.integers(0, frames - length + 1))
        if (plan[max(start - 1, 0) : start + length + 1] != VISIBLE).any():
            continue
        plan[start : start + length] = ABSENT if rng.random() < 0.5 else BLURRED
        remaining -= length
    return plan


def _object_layer(
    look: _Look, centre: np.ndarray, half: float, t: int, size: tuple[int, int],
    smear: np.ndarray | None,
) -> tuple[tuple[int, int, int, int], np.ndarray, np.ndarray, np.ndarray]:
    """(window, RGB, alpha, sharp silhouette) of the object at frame ``t``; ``smear`` (2,) is
    the path of a motion blur in pixels, sampled BLUR_SAMPLES times."""
    angle = look.angle + look.spin * t
    reach = half * 1.5 + (0 if smear is None else float(np.abs(smear).max()) / 2)
    window = _window(centre, reach, size)
    if smear is None:
        offsets = np.zeros((1, 2))
    else:
        offsets = np.linspace(-0.5, 0.5, BLUR_SAMPLES)[:, None] * smear
    colour_sum, alpha_sum, sharp = 0.0, 0.0, None
    for offset in offsets:
        u, v = _local(centre + offset, half, angle, window)
        mask = _shape_mask(look.silhouette, u, v)
        across = u * np.cos(look.stripe_angle) + v * np.sin(look.stripe_angle)
        stripe = np.sin(look.stripes * across)
        texture = np.where(stripe > 0, 1.0, 0.68) * (0.92 + 0.08 * u)
        colour_sum = colour_sum + (mask * texture)[..., None] * look.colour
        alpha_sum = alpha_sum + mask
        if sharp is None or not offset.any():
            sharp = mask
    alpha = np.asarray(alpha_sum, np.float32) / len(offsets)
    rgb = colour_sum / np.maximum(alpha_sum, 1)[..., None]
    return window, rgb.astype(np.float32), alpha, sharp


def _tight_box(mask: np.ndarray, window: tuple[int, int, int, int]) -> np.ndarray:
    """Inclusive xyxy box of ``mask`` (window coordinates) in frame pixels."""
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return np.array(
        [window[0] + cols[0], window[1] + rows[0], window[0] + cols[-1], window[1] + rows[-1]],
        np.float32,
    )


def _pillars(
    rng: np.random.Generator, canvas: np.ndarray, boxes: np.ndarray, plan: np.ndarray,
    size: tuple[int, int],
) -> list[tuple[int, int, np.ndarray]]:
    """Foreground pillars, one per ABSENT run: (left edge at frame 0, px/frame, texture (H, w, 3)).
    Each sweeps across the view fast enough to hide the object only around its run; the
    texture is a darkened patch of the background from elsewhere, so it reads as clutter."""
    pillars = []
    frames = np.flatnonzero(plan == ABSENT)
    for run in np.split(frames, np.flatnonzero(np.diff(frames) > 1) + 1) if len(frames) else []:
        side = float((boxes[run, 2] - boxes[run, 0]).max()) + 1
        speed = int(np.ceil(side * rng.uniform(0.6, 1.0))) * (1 if rng.random() < 0.5 else -1)
        left = int(np.floor((boxes[run, 0] - speed * run).min())) - 1
        right = int(np.ceil((boxes[run, 2] - speed * run).max())) + 2
        span = min(right - left, size[1])
        y = int(rng.integers(0, canvas.shape[0] - size[0] + 1))
        x = int(rng.integers(0, canvas.shape[1] - span + 1))
        texture = canvas[y : y + size[0], x : x + span] * float(rng.uniform(0.5, 0.8))
        pillars.append((left, speed, texture))
    return pillars


def _cover(
    image: np.ndarray, pillars: list[tuple[int, int, np.ndarray]], t: int
) -> np.ndarray:
    """Draw the pillars at frame ``t`` over ``image``; returns the (H, W) mask they cover."""
    covered = np.zeros(image.shape[:2], bool)
    height, width = covered.shape
    for left, speed, texture in pillars:
        x0 = left + speed * t
        a, b = max(x0, 0), min(x0 + texture.shape[1], width)
        if b > a:
            image[:, a:b] = texture[:, a - x0 : b - x0]
            covered[:, a:b] = True
    return covered


def _view(image: np.ndarray, corner: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The (H, W) view of a canvas layer whose top-left is at sub-pixel ``corner``."""
    matrix = np.array([[1, 0, corner[0]], [0, 1, corner[1]]], np.float32)
    return cv2.warpAffine(image, matrix, (size[1], size[0]), flags=cv2.WARP_INVERSE_MAP
                          | cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def _look(rng: np.random.Generator, label: int) -> _Look:
    """The object's appearance for class ``label``."""
    silhouette, family = CLASSES[label]
    return _Look(
        silhouette=silhouette,
        colour=_family_colour(rng, family),
        stripes=float(rng.uniform(7, 10)),
        stripe_angle=float(rng.uniform(0, np.pi)),
        angle=float(rng.normal(0, 0.3)),
        spin=float(rng.normal(0, 0.03)),
    )


def render_clip(
    seed: int, label: int, height: int, width: int, frames: int,
    area: tuple[float, float] = AREA_RANGE,
) -> ActionClip:
    """A deterministic video of class ``label`` with the object's per-frame ground truth;
    ``area`` is the range of the object's square extent as a share of the frame."""
    if not 0 <= label < len(CLASSES):
        raise ValueError(f"label {label} is not a class id in 0..{len(CLASSES) - 1}")
    if not 0 < area[0] <= area[1] <= 0.25:
        raise ValueError(f"object area range {area} must satisfy 0 < min <= max <= 0.25")
    rng = np.random.default_rng(seed)
    size = (height, width)
    unit = min(height, width) / 112
    half = float(np.sqrt(rng.uniform(*area) * height * width)) / 2
    margin = int(np.ceil(0.12 * max(height, width)))
    canvas = textured_panorama(rng, height + 2 * margin, width + 2 * margin).astype(np.float32)
    _paint_distractors(rng, canvas, half)
    camera = _camera(rng, frames, margin, unit)
    path = _object_path(rng, frames, size, half, unit)
    plan = _plan(rng, frames)
    look = _look(rng, label)
    heading = np.gradient(path, axis=0) if frames > 1 else np.ones((1, 2))
    heading /= np.maximum(np.linalg.norm(heading, axis=1, keepdims=True), 1e-6)
    smear = heading * 2 * half * rng.uniform(0.8, 1.3, (frames, 1))
    layers = [
        _object_layer(look, path[t], half, t, size, smear[t] if plan[t] == BLURRED else None)
        for t in range(frames)
    ]
    boxes = np.stack([_tight_box(sharp, window) for window, _, _, sharp in layers])
    pillars = _pillars(rng, canvas, boxes, plan, size)
    images, fractions = [], []
    for t, (window, rgb, alpha, sharp) in enumerate(layers):
        image = _view(canvas, camera[t], size)
        x0, y0, x1, y1 = window
        region = image[y0:y1, x0:x1]
        image[y0:y1, x0:x1] = region * (1 - alpha[..., None]) + rgb * alpha[..., None]
        hidden = _cover(image, pillars, t)[y0:y1, x0:x1]
        fractions.append((sharp & ~hidden).sum() / max(sharp.sum(), 1))
        images.append(np.clip(image, 0, 255).astype(np.uint8))
    fraction = np.asarray(fractions, np.float32)
    visibility = np.where(fraction < MIN_VISIBLE_FRACTION, ABSENT,
                          np.where(plan == BLURRED, BLURRED, VISIBLE)).astype(np.uint8)
    return ActionClip(np.stack(images), label, boxes, visibility, fraction)
