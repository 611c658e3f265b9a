"""What the synthetic worlds share: a wide textured background (smooth colour
fields, horizon shading, noise and clutter) that a camera pans over (synthdet) or that sits
behind the moving object (synthaction), numpy + OpenCV, deterministic from the generator; and
the size limits every world checks before it renders anything."""

from __future__ import annotations

import cv2
import numpy as np


def textured_panorama(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A wide textured background: smooth colour fields, horizon bands and clutter blobs."""
    low = rng.uniform(40, 200, size=(6, 12, 3)).astype(np.float32)
    image = cv2.resize(low, (width, height), interpolation=cv2.INTER_CUBIC)
    rows = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
    image = image * (0.7 + 0.3 * rows)
    noise = cv2.resize(rng.normal(0, 18, size=(height // 4, width // 4, 3)).astype(np.float32),
                       (width, height), interpolation=cv2.INTER_LINEAR)
    image += noise + rng.normal(0, 6, size=image.shape).astype(np.float32)
    for _ in range(width * height // 1500):  # clutter: blobs and bars of any colour
        centre = (int(rng.integers(width)), int(rng.integers(height)))
        colour = tuple(float(c) for c in rng.uniform(30, 230, 3))
        if rng.random() < 0.5:
            axes = (int(rng.integers(3, 14)), int(rng.integers(3, 14)))
            cv2.ellipse(image, centre, axes, float(rng.uniform(0, 180)), 0, 360, colour, -1)
        else:
            size = (int(rng.integers(2, 6)), int(rng.integers(8, 30)))
            cv2.rectangle(image, centre, (centre[0] + size[0], centre[1] + size[1]), colour, -1)
    return np.clip(image, 0, 255)


MAX_SIDE = 4096  # px: twice Cityscapes' 2048; larger frames are refused before any rendering
MAX_VIDEOS = 100_000
MAX_FRAMES = 10_000


def check_world_size(config: object, world: str) -> None:
    """Refuse, before anything is rendered, a synthetic world with an empty split or a frame
    size, length or video count no machine here could render (a ValueError naming it)."""
    for split in ("train_videos", "val_videos"):
        count = getattr(config, split)
        if not 1 <= count <= MAX_VIDEOS:
            raise ValueError(f"{world}: {split}={count}; allowed 1..{MAX_VIDEOS}")
    height, width, frames = (getattr(config, k) for k in ("height", "width", "frames"))
    if max(height, width) > MAX_SIDE:
        raise ValueError(f"{world}: frames of {height}x{width}; at most {MAX_SIDE} px a side")
    if not 2 <= frames <= MAX_FRAMES:
        raise ValueError(f"{world}: frames={frames}; allowed 2..{MAX_FRAMES}")
