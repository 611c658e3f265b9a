"""A labelled H.264 video as the harness consumes it: decoded once, frames and codec motion
fields served per index (the ``VideoSource`` contract of vidbench.api), and the arrays saved
beside it (``.npz`` annotation sidecars)."""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
from vidbench.api import Frame, VideoInfo
from vidbench.datasets.video.codec import DecodedVideo, VideoError, decode_with_motion
from vidbench.datasets.video.motion import MotionField, rasterise

MOTION_GRID = 8


def make_frame(
    frames: np.ndarray, fields: list[MotionField | None], index: int, is_key: bool = False
) -> Frame:
    """The harness's ``Frame`` for decoded RGB ``frames`` (T,H,W,3) and their motion fields
    (None where motion was not rasterised)."""
    field = fields[index]
    has_motion = field is not None and bool(field.valid.any())
    return Frame(
        index=index,
        image=torch.from_numpy(frames[index]).permute(2, 0, 1).float().div_(255),
        motion=torch.from_numpy(field.vectors) if has_motion else None,
        motion_valid=torch.from_numpy(field.valid) if has_motion else None,
        motion_grid=field.grid if field is not None else MOTION_GRID,
        is_key=is_key,
    )


def decoded_frames(decoded: DecodedVideo) -> list[Frame]:
    """Every frame of a decoded video, its codec vectors rasterised on the standard grid."""
    height, width = decoded.frames.shape[1:3]
    fields = [rasterise(records, height, width, grid=MOTION_GRID) for records in decoded.motion]
    return [make_frame(decoded.frames, fields, i) for i in range(len(fields))]


class EncodedVideo:
    """An H.264 file plus an ``.npz`` of dense labels ``labels`` (T, H, W) uint8.

    Decoding (and the rasterisation of motion vectors, which a decoder hands out for free)
    happens once, on first use, outside any timed region.
    """

    def __init__(
        self,
        name: str,
        video_path: Path,
        labels_path: Path,
        label_indices: tuple[int, ...],
        fps: float,
        flow_truth: Callable[[], tuple[np.ndarray, np.ndarray]] | None = None,
        scored_index: int | None = None,
        motion: bool = True,
    ) -> None:
        self.name = name
        self.motion = motion  # False: frames carry no motion (the rasterisation is skipped)
        self.scored_index = scored_index  # the frame a one-frame-per-snippet protocol scores
        self._flow_truth = flow_truth
        self.video_path = Path(video_path)
        self.labels_path = Path(labels_path)
        self.label_indices = label_indices
        self._fps = fps

    @cached_property
    def _decoded(self) -> tuple[np.ndarray, list[MotionField | None]]:
        decoded = decode_with_motion(self.video_path)
        if not self.motion:
            return decoded.frames, [None] * len(decoded.frames)
        height, width = decoded.frames.shape[1:3]
        fields = [rasterise(records, height, width, grid=MOTION_GRID) for records in decoded.motion]
        return decoded.frames, fields

    @cached_property
    def _labels(self) -> np.ndarray:
        try:
            with np.load(self.labels_path) as data:
                labels = data["labels"]
        except (OSError, KeyError, ValueError) as error:
            raise VideoError(f"{self.labels_path}: cannot read labels ({error}).") from error
        frames = self._decoded[0]
        if labels.shape != frames.shape[:3]:
            raise VideoError(
                f"{self.labels_path}: labels have shape {labels.shape} but {self.video_path} "
                f"decodes to {frames.shape[:3]} (frames, height, width)."
            )
        return labels

    @property
    def info(self) -> VideoInfo:
        frames = self._decoded[0]
        return VideoInfo(self.name, frames.shape[1], frames.shape[2], frames.shape[0], self._fps)

    def frame(self, index: int, is_key: bool = False) -> Frame:
        frames, fields = self._decoded
        return make_frame(frames, fields, index, is_key)

    def label(self, index: int) -> np.ndarray:
        return self._labels[index]

    @property
    def has_flow_truth(self) -> bool:
        """Whether ``backward_flow`` has ground truth to give (rendered worlds do)."""
        return self._flow_truth is not None

    def backward_flow(self) -> tuple[np.ndarray, np.ndarray]:
        """Ground-truth motion where the dataset has it: (T-1, 2, H, W) float32 pixels, entry t
        at frame t+1's pixels pointing to frame t (codec convention), and (T-1, H, W) validity."""
        if self._flow_truth is None:
            raise ValueError(f"{self.video_path}: this dataset has no ground-truth flow.")
        return self._flow_truth()

    def release(self) -> None:
        """Drop decoded frames and labels (they are decoded again on next use)."""
        self.__dict__.pop("_decoded", None)
        self.__dict__.pop("_labels", None)


def load_arrays(path: Path, required: tuple[str, ...], what: str) -> dict[str, np.ndarray]:
    """Every array of the ``.npz`` at ``path``; a VideoError naming the file when it cannot be
    read or lacks one of ``required``."""
    try:
        with np.load(path) as data:
            arrays = {key: data[key] for key in data.files}
    except (OSError, ValueError) as error:
        raise VideoError(f"{path}: cannot read {what} ({error}).")
    missing = [key for key in required if key not in arrays]
    if missing:
        raise VideoError(f"{path}: missing arrays {missing}.")
    return arrays
