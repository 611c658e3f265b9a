"""A procedural video world for object detection: six kinds of objects over a textured,
panning scene (numpy only, deterministic from a seed).

What makes it a stand-in for ImageNet VID on a CPU:
- classes with distinct, learnable shape, colour family and texture: car, bus, person, bird,
  bicycle, ball;
- a camera that pans, zooms slowly and shakes over a wide textured panorama with clutter;
- objects that move in the world at speeds spread over two orders of magnitude (so FGFA's slow /
  medium / fast motion-IoU bins are all populated), enter and leave the frame, occlude each other
  (painter's order; boxes cover the visible part, objects less than a quarter visible are not
  annotated, as VID annotates visible extent), are motion-blurred when fast, and change in scale,
  rotation and lighting over time;
- a box (inclusive pixel corners, the tight box of the visible mask) and a track id for every
  annotated object on every frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from vidbench.datasets.scenery import textured_panorama

CLASS_NAMES = ("car", "bus", "person", "bird", "bicycle", "ball")
# (half width, half height) in pixels at scale 1 for 128-pixel-high frames, and colour family.
SHAPES = {
    "car": ((22.0, 10.0), ((200, 30, 30), (230, 90, 40))),
    "bus": ((34.0, 12.0), ((240, 190, 20), (250, 140, 0))),
    "person": ((7.0, 18.0), ((40, 60, 200), (30, 30, 120))),
    "bird": ((10.0, 6.0), ((235, 235, 235), (160, 160, 170))),
    "bicycle": ((16.0, 11.0), ((20, 170, 60), (90, 200, 40))),
    "ball": ((10.0, 10.0), ((170, 40, 200), (230, 80, 150))),
}
MIN_VISIBLE_FRACTION = 0.25
MIN_BOX_PIXELS = 12
BLUR_SPEED_PX = 3.0


@dataclass(frozen=True)
class Track:
    """One object's life: class, world trajectory, pose and look over the video's frames."""

    label: int
    start: np.ndarray  # (2,) world position (x, y) at frame 0
    velocity: np.ndarray  # (2,) world pixels per frame
    scale: tuple[float, float]  # scale at the first and the last frame (approach / recede)
    angle: tuple[float, float]  # rotation in radians at the first and the last frame
    colour: np.ndarray  # (3,) base colour
    stripes: float  # texture frequency
    light_phase: float
    depth: float  # painter's order: larger is nearer (drawn later)


@dataclass(frozen=True)
class Clip:
    """A rendered video: frames (T,H,W,3) uint8 and per-frame (boxes, labels, track ids)."""

    frames: np.ndarray
    boxes: list[np.ndarray]
    labels: list[np.ndarray]
    track_ids: list[np.ndarray]


def _shape_mask(name: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Inside-test of a class's silhouette in local coordinates u, v in [-1, 1]."""
    if name == "car":
        body = (np.abs(u) < 1) & (v > -0.2) & (v < 0.7)
        roof = (np.abs(u) < 0.55) & (v <= -0.2) & (v > -1)
        wheels = ((np.abs(u) - 0.6) ** 2 / 0.06 + (v - 0.75) ** 2 / 0.08) < 1
        return body | roof | wheels
    if name == "bus":
        return (np.abs(u) < 1) & (np.abs(v) < 0.9) | (((np.abs(u) - 0.7) ** 2 + (v - 0.9) ** 2) < 0.02)
    if name == "person":
        head = (u**2 + (v + 0.78) ** 2 * 4) < 0.35
        body = (u**2 / 0.8 + (v - 0.2) ** 2 / 0.65) < 1
        return head | body
    if name == "bird":
        wing = np.abs(v + 0.6 * np.abs(u) - 0.2) < 0.35
        return wing & (np.abs(u) < 1) | ((u**2 + v**2 * 2) < 0.12)
    if name == "bicycle":
        ring = np.abs(np.hypot((np.abs(u) - 0.55) / 0.45, (v - 0.3) / 0.65) - 1) < 0.3
        bar = (np.abs(v + 0.1 + 0.2 * u) < 0.14) & (np.abs(u) < 0.6)
        return ring | bar
    return (u**2 + v**2) < 1  # ball


def _texture(name: str, u: np.ndarray, v: np.ndarray, stripes: float) -> np.ndarray:
    """Per-class texture in [0.55, 1]: windows, stripes, rings."""
    if name == "bus":
        windows = (np.sin(u * stripes * 3) > 0.2) & (v < -0.1) & (v > -0.7)
        return np.where(windows, 0.55, 1.0)
    if name == "ball":
        return 0.75 + 0.25 * np.sign(np.sin(np.hypot(u, v) * stripes * 2))
    if name == "person":
        return np.where(v > 0.0, 0.7, 1.0)
    return 0.85 + 0.15 * np.sin(u * stripes + v * stripes * 0.5)


def _tracks(rng: np.random.Generator, count: int, frames: int, view: tuple[int, int],
            world: tuple[int, int]) -> list[Track]:
    """Objects placed so that they cross the camera's path; speeds log-uniform in
    [0.02, 4] px/frame (at 128-pixel-high frames; scaled with the frame) in a random direction,
    mostly horizontal, like traffic and walkers."""
    tracks = []
    for _ in range(count):
        label = int(rng.integers(len(CLASS_NAMES)))
        speed = float(np.exp(rng.uniform(np.log(0.02), np.log(4.0))))
        heading = rng.choice([0.0, np.pi]) + rng.normal(0, 0.35)
        velocity = speed * view[0] / 128 * np.array([np.cos(heading), np.sin(heading)])
        middle = np.array([rng.uniform(0.3, 0.7) * world[1], rng.uniform(0.35, 0.7) * world[0]])
        start = middle - velocity * frames * rng.uniform(0.2, 0.8)
        base = float(rng.uniform(0.9, 1.8)) * view[0] / 128
        colour_a, colour_b = (np.array(c, np.float32) for c in SHAPES[CLASS_NAMES[label]][1])
        colour = colour_a + (colour_b - colour_a) * float(rng.random())
        tracks.append(
            Track(
                label=label,
                start=start,
                velocity=velocity,
                scale=(base, base * float(rng.uniform(0.7, 1.4))),
                angle=(float(rng.normal(0, 0.1)), float(rng.normal(0, 0.25))),
                colour=colour * float(rng.uniform(0.8, 1.1)),
                stripes=float(rng.uniform(4, 10)),
                light_phase=float(rng.uniform(0, 2 * np.pi)),
                depth=float(rng.random()),
            )
        )
    return sorted(tracks, key=lambda t: t.depth)


def _render_object(
    track: Track, t: float, frames: int, camera: np.ndarray, zoom: float, size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, tuple[int, int, int, int]] | None:
    """(RGB patch, mask, window) of one object at frame t on the screen, or None off-screen."""
    name = CLASS_NAMES[track.label]
    fraction = t / max(frames - 1, 1)
    scale = (track.scale[0] + (track.scale[1] - track.scale[0]) * fraction) * zoom
    angle = track.angle[0] + (track.angle[1] - track.angle[0]) * fraction
    half = np.array(SHAPES[name][0]) * scale
    centre = (track.start + track.velocity * t - camera) * zoom + np.array([size[1], size[0]]) / 2
    radius = float(np.hypot(*half)) + 2
    x0, y0 = int(np.floor(centre[0] - radius)), int(np.floor(centre[1] - radius))
    x1, y1 = int(np.ceil(centre[0] + radius)), int(np.ceil(centre[1] + radius))
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, size[1]), min(y1, size[0])
    if x1 <= x0 or y1 <= y0:
        return None
    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    dx, dy = xs - centre[0], ys - centre[1]
    cos, sin = np.cos(angle), np.sin(angle)
    u = (cos * dx + sin * dy) / half[0]
    v = (-sin * dx + cos * dy) / half[1]
    mask = _shape_mask(name, u, v)
    if not mask.any():
        return None
    light = 0.85 + 0.15 * np.sin(2 * np.pi * fraction + track.light_phase)
    patch = track.colour[None, None] * (_texture(name, u, v, track.stripes) * light)[..., None]
    speed = float(np.hypot(*track.velocity)) * zoom
    if speed > BLUR_SPEED_PX:  # motion blur along the velocity, mask blurred alike
        length = int(min(speed, 9))
        kernel = np.zeros((length, length), np.float32)
        kernel[length // 2] = 1.0 / length
        rotation = cv2.getRotationMatrix2D((length / 2 - 0.5, length / 2 - 0.5),
                                           float(np.degrees(np.arctan2(*track.velocity[::-1]))), 1)
        kernel = cv2.warpAffine(kernel, rotation, (length, length))
        kernel /= max(kernel.sum(), 1e-6)
        alpha = cv2.filter2D(mask.astype(np.float32), -1, kernel)
        patch = cv2.filter2D(patch * mask[..., None], -1, kernel) / np.maximum(alpha, 1e-3)[..., None]
        return patch, alpha, (x0, y0, x1, y1)
    return patch, mask.astype(np.float32), (x0, y0, x1, y1)


def render_clip(seed: int, height: int, width: int, frames: int, objects: int) -> Clip:
    """A deterministic video of ``frames`` frames with up to ``objects`` tracks."""
    rng = np.random.default_rng(seed)
    world = (int(height * 1.6), int(width * 2.5))
    panorama = textured_panorama(rng, *world)
    moving = rng.random() < 0.5  # half the clips from a still camera, half panning
    unit = height / 128  # speeds and shake scale with the frame, like the objects
    pan = rng.normal(0, 0.6 * unit, size=2) * np.array([1.0, 0.15]) * moving
    start = np.array([world[1] / 2, world[0] / 2]) - pan * frames / 2
    shake = rng.normal(0, 0.3 * unit, size=(frames, 2)) * moving
    zoom_end = float(rng.uniform(0.9, 1.15))
    count = int(rng.integers(max(objects - 2, 1), objects + 1))
    tracks = _tracks(rng, count, frames, (height, width), world)
    images, boxes, labels, ids = [], [], [], []
    for t in range(frames):
        camera = start + pan * t + shake[t]
        zoom = 1 + (zoom_end - 1) * t / max(frames - 1, 1)
        # the background as the camera sees it: a zoomed, shifted crop of the panorama
        matrix = np.array([[1 / zoom, 0, camera[0] - width / 2 / zoom],
                           [0, 1 / zoom, camera[1] - height / 2 / zoom]], np.float32)
        image = cv2.warpAffine(panorama, matrix, (width, height), flags=cv2.WARP_INVERSE_MAP
                               | cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        layers = []
        for track in tracks:
            drawn = _render_object(track, t, frames, camera, zoom, (height, width))
            if drawn is None:
                layers.append(None)
                continue
            patch, alpha, (x0, y0, x1, y1) = drawn
            region = image[y0:y1, x0:x1]
            image[y0:y1, x0:x1] = region * (1 - alpha[..., None]) + patch * alpha[..., None]
            full = np.zeros((height, width), bool)
            full[y0:y1, x0:x1] = alpha > 0.5
            layers.append(full)
        frame_boxes, frame_labels, frame_ids = [], [], []
        for k, full in enumerate(layers):
            if full is None:
                continue
            covered = np.zeros_like(full)
            for nearer in layers[k + 1 :]:
                if nearer is not None:
                    covered |= nearer
            visible = full & ~covered
            if visible.sum() < MIN_VISIBLE_FRACTION * full.sum() or visible.sum() < MIN_BOX_PIXELS:
                continue
            rows, cols = np.flatnonzero(visible.any(1)), np.flatnonzero(visible.any(0))
            frame_boxes.append([cols[0], rows[0], cols[-1], rows[-1]])
            frame_labels.append(tracks[k].label)
            frame_ids.append(k)
        images.append(np.clip(image, 0, 255).astype(np.uint8))
        boxes.append(np.asarray(frame_boxes, np.float32).reshape(-1, 4))
        labels.append(np.asarray(frame_labels, np.int64))
        ids.append(np.asarray(frame_ids, np.int64))
    return Clip(np.stack(images), boxes, labels, ids)
