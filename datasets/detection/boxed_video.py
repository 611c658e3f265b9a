"""A box-annotated H.264 video as the harness consumes it (the ``VideoSource`` contract with
``label(index) -> DetectionTarget``).

Annotations live in one ``.npz`` beside the video, flattened over frames: ``frame`` (K,) int64,
``boxes`` (K, 4) float32 xyxy with inclusive corners, ``labels`` (K,) int64, ``track_ids``
(K,) int64 and optionally ``motion_iou`` (K,) float32; objects keep their file order within a
frame. Without ``motion_iou`` it is computed from the tracks (vidbench.boxes.motion_iou).
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

import numpy as np
from vidbench.api import DetectionTarget, Frame, VideoInfo
from vidbench.boxes import motion_iou
from vidbench.datasets.video.codec import VideoError
from vidbench.datasets.video.encoded import EncodedVideo, load_arrays

ANNOTATION_KEYS = ("frame", "boxes", "labels", "track_ids")


def save_annotations(path: Path, targets: list[DetectionTarget]) -> None:
    """Write per-frame ``targets`` (frame t = targets[t]) in the layout above."""
    frame = np.concatenate([np.full(len(t.labels), i, np.int64) for i, t in enumerate(targets)])
    np.savez_compressed(
        path,
        frame=frame,
        boxes=np.concatenate([t.boxes.reshape(-1, 4) for t in targets]).astype(np.float32),
        labels=np.concatenate([t.labels for t in targets]).astype(np.int64),
        track_ids=np.concatenate([t.track_ids for t in targets]).astype(np.int64),
        motion_iou=np.concatenate([t.motion_iou for t in targets]).astype(np.float32),
    )


class DetectionVideo:
    """An H.264 file with box annotations on every frame listed in ``label_indices``."""

    def __init__(
        self,
        name: str,
        video_path: Path,
        annotations_path: Path,
        label_indices: tuple[int, ...],
        fps: float,
    ) -> None:
        self.name = name
        self.video_path = Path(video_path)
        self.annotations_path = Path(annotations_path)
        self.label_indices = label_indices
        self._video = EncodedVideo(name, video_path, annotations_path, label_indices, fps)

    @property
    def info(self) -> VideoInfo:
        return self._video.info

    def frame(self, index: int, is_key: bool = False) -> Frame:
        return self._video.frame(index, is_key)

    @cached_property
    def _targets(self) -> list[DetectionTarget]:
        arrays = load_arrays(self.annotations_path, ANNOTATION_KEYS, "annotations")
        count = self.info.num_frames
        frame = arrays["frame"].astype(np.int64)
        if len(frame) and (frame.min() < 0 or frame.max() >= count):
            raise VideoError(
                f"{self.annotations_path}: annotated frame {int(frame.max())} is outside the "
                f"{count} frames of {self.video_path}."
            )
        rows = [np.flatnonzero(frame == t) for t in range(count)]
        boxes = [arrays["boxes"][r].astype(np.float32).reshape(-1, 4) for r in rows]
        tracks = [arrays["track_ids"][r].astype(np.int64) for r in rows]
        speeds = (
            [arrays["motion_iou"][r].astype(np.float32) for r in rows]
            if "motion_iou" in arrays
            else motion_iou(boxes, tracks)
        )
        return [
            DetectionTarget(b, arrays["labels"][r].astype(np.int64), k, s)
            for r, b, k, s in zip(rows, boxes, tracks, speeds)
        ]

    def label(self, index: int) -> DetectionTarget:
        return self._targets[index]

    def release(self) -> None:
        """Drop decoded frames and annotations (they are read again on next use)."""
        self._video.release()
        self.__dict__.pop("_targets", None)
