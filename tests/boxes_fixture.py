"""Tiny box-annotated videos made by the tests: coloured rectangles (one colour per class)
moving over grey noise, H.264-encoded, annotations in DetectionVideo's layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from vidbench.api import DetectionTarget
from vidbench.datasets.detection.boxed_video import DetectionVideo, save_annotations
from vidbench.datasets.video.codec import encode_h264

HEIGHT, WIDTH, FRAMES = 64, 128, 8
COLOURS = np.array([[230, 30, 30], [30, 220, 30], [40, 40, 240]], np.uint8)  # class 0, 1, 2


def tiny_video(root: Path, name: str, seed: int, objects: int = 2) -> DetectionVideo:
    """Coloured rectangles (one colour per class) moving over grey noise, H.264-encoded."""
    rng = np.random.default_rng(seed)
    background = rng.integers(60, 190, size=(HEIGHT, WIDTH, 1), dtype=np.uint8).repeat(3, 2)
    sizes = rng.integers(14, 30, size=(objects, 2))
    starts = rng.uniform([0, 0], [WIDTH - 30, HEIGHT - 30], size=(objects, 2))
    speeds = rng.uniform(-3, 3, size=(objects, 2))
    labels = rng.integers(0, 3, size=objects).astype(np.int64)
    frames, targets = [], []
    for t in range(FRAMES):
        image = background.copy()
        boxes = []
        for k in range(objects):
            limit = [WIDTH - sizes[k, 0], HEIGHT - sizes[k, 1]]
            x1, y1 = np.clip(starts[k] + t * speeds[k], 0, limit).astype(int)
            x2, y2 = x1 + sizes[k, 0] - 1, y1 + sizes[k, 1] - 1
            image[y1 : y2 + 1, x1 : x2 + 1] = COLOURS[labels[k]]
            boxes.append([x1, y1, x2, y2])
        frames.append(image)
        speed = np.full(objects, np.nan, np.float32)
        ids = np.arange(objects)
        targets.append(DetectionTarget(np.array(boxes, np.float32), labels, ids, speed))
    encode_h264(np.stack(frames), root / f"{name}.mp4")
    save_annotations(root / f"{name}.npz", targets)
    indices = tuple(range(FRAMES))
    return DetectionVideo(name, root / f"{name}.mp4", root / f"{name}.npz", indices, 17.0)
