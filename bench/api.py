"""The one contract between the harness and a method: frames in, typed predictions out.

The harness owns the loop, the clock and the FLOP counter; a method owns its state and marks
its component boundaries with ``with self.meter("warp"):``. See docs/measurement.md §5 (the
meter) and README.md, "Tasks".
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np
import torch

Task = str  # a task name registered in vidbench.registry.TASKS


class DataError(ValueError):
    """Bad input data (a missing, truncated or corrupt file); the message names the file.
    The harness records it against the run it spoiled and carries on with the others."""


@dataclass(frozen=True)
class VideoInfo:
    """What a method may know about a video before its first frame."""

    name: str
    height: int
    width: int
    num_frames: int
    fps: float


@dataclass(frozen=True)
class Frame:
    """One decoded frame as the protocol feeds it.

    Attributes:
        index: position in the video (display order, 0-based).
        image: (3, H, W) float32 tensor, RGB in [0, 1].
        motion: (2, gh, gw) float32 tensor in pixels at a block grid of ``motion_grid`` px:
            where each block of this frame came from in the previous decoded frame
            (codec convention src - dst; see vidbench.datasets.video.motion), or None when the
            frame carries no vectors (I-frames).
        motion_valid: (gh, gw) bool tensor, False for intra blocks; None with ``motion``.
        motion_grid: block size in pixels of ``motion``.
        is_key: the protocol's keyframe schedule marks this frame a keyframe.
        key_index: the keyframe whose features this frame's prediction should use under the
            protocol's schedule (seed 001: the key of its segment, possibly a later frame), or
            None where the protocol leaves that to the method.
    """

    index: int
    image: torch.Tensor
    motion: torch.Tensor | None
    motion_valid: torch.Tensor | None
    motion_grid: int
    is_key: bool
    key_index: int | None = None


@dataclass(frozen=True)
class SegmentationPrediction:
    """Per-pixel class scores for one frame: ``scores`` (C, H, W) float32 (softmax probabilities).

    ``meta`` carries method facts the records count, e.g. ``{"key": True}`` when features
    were computed on this frame.
    """

    index: int
    scores: torch.Tensor
    meta: dict[str, Any] = field(default_factory=dict)

    def labels(self) -> np.ndarray:
        """(H, W) int64 arg-max labels (train ids)."""
        return self.scores.argmax(0).cpu().numpy().astype(np.int64)


@dataclass(frozen=True)
class DetectionTarget:
    """Ground-truth objects of one frame.

    Boxes follow the ILSVRC convention: (M, 4) float32 ``x1, y1, x2, y2`` in pixels with
    inclusive corners (width = x2 - x1 + 1). ``labels`` (M,) int64 class ids 0..C-1 (no
    background id); ``track_ids`` (M,) int64 instance ids, unique within a video;
    ``motion_iou`` (M,) float32: each object's mean IoU with its own boxes in the frames
    within +-10 (FGFA's speed measure, docs/datasets.md §3.7), NaN where unknown.
    """

    boxes: np.ndarray
    labels: np.ndarray
    track_ids: np.ndarray
    motion_iou: np.ndarray


@dataclass(frozen=True)
class DetectionPrediction:
    """Detections for one frame: ``boxes`` (N, 4) float32 xyxy pixels (inclusive corners, as
    DetectionTarget), ``scores`` (N,) float32 confidences, ``labels`` (N,) int64 class ids."""

    index: int
    boxes: torch.Tensor
    scores: torch.Tensor
    labels: torch.Tensor
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RecognitionTarget:
    """The class(es) of one video, the same for each of its frames: ``labels`` (L,) int64
    class ids in ascending order, L >= 1 (ActivityNet and FCVID videos may carry up to 3;
    single-label metrics use the first, docs/datasets.md §4.5)."""

    labels: np.ndarray

    @property
    def primary(self) -> int:
        return int(self.labels[0])


@dataclass(frozen=True)
class RecognitionPrediction:
    """Class scores (C,) float32 (softmax probabilities) after step ``index``, or for the whole
    video when ``index`` is None (a video-level prediction belongs to no frame)."""

    index: int | None
    scores: torch.Tensor
    meta: dict[str, Any] = field(default_factory=dict)


Prediction = SegmentationPrediction | DetectionPrediction | RecognitionPrediction


class Meter(Protocol):
    """The harness's clock: ``with meter("warp"):`` marks a component boundary."""

    def __call__(self, component: str) -> contextlib.AbstractContextManager[None]: ...


class NullMeter:
    """A meter that measures nothing (accuracy passes, tests)."""

    @contextlib.contextmanager
    def __call__(self, component: str) -> Iterator[None]:
        yield


class VideoSource(Protocol):
    """A decoded video as datasets hand it to protocols and training code."""

    info: VideoInfo
    label_indices: tuple[int, ...]

    def frame(self, index: int, is_key: bool = False) -> Frame:
        """Frame ``index`` with its motion field, marked as the protocol says."""
        ...

    def label(self, index: int | None) -> Any:
        """The target of frame ``index`` in the task's type: (H, W) uint8 train ids (255
        ignored), a DetectionTarget, or a RecognitionTarget (``index`` None: the video's)."""
        ...


class Workspace(Protocol):
    """What a method may use to build itself: training data and a checkpoint cache.

    ``checkpoint(name, key, build)`` returns a cached file for ``key`` (a JSON-able dict that
    identifies the artefact), calling ``build(path)`` to make it when missing. The harness
    records every checkpoint handed out, so records name the weights they measured, except an
    ``intermediate=True`` one: a stage several methods' checkpoints are trained from.
    """

    seed: int
    num_classes: int

    def train_videos(self) -> Sequence[VideoSource]: ...

    def checkpoint(
        self,
        name: str,
        key: dict[str, Any],
        build: Callable[[Path], None],
        intermediate: bool = False,
    ) -> Path: ...


class Method(abc.ABC):
    """A streaming method. The harness calls ``start``, then ``step`` per frame, then ``finish``.

    Contract:
        * ``start(video)`` resets ALL per-video state; replaying a video after another gives
          the same outputs as replaying it first.
        * ``step(frame)`` returns zero or more predictions, each tagged with the index of the
          frame it belongs to; a method that needs the future buffers and emits late.
        * ``finish()`` emits whatever is still buffered. Over one video every fed frame gets
          exactly one prediction of the task's type (vidbench.tasks), and tasks with
          video-level predictions get one more, with index None.
        * Methods never see labels, never call clocks, and run under ``torch.no_grad``
          (the harness sets it).
    """

    name: ClassVar[str]
    task: ClassVar[Task]
    components: ClassVar[tuple[str, ...]]
    Config: ClassVar[type]  # a frozen dataclass of the method's options (may have no fields)
    smoke: ClassVar[dict[str, str]] = {}  # options for a tiny, fast build (conformance test)
    device: str = "cpu"  # set by the harness when it moves the method (Method.to)
    uses_keyframes: ClassVar[bool] = True
    needs_next_keyframe: ClassVar[bool] = False

    def __init__(self, config: Any, workspace: Workspace) -> None:
        """Build (train or load) what the method needs; the harness swaps ``self.meter``."""
        self.config = config
        self.meter: Meter = NullMeter()

    @abc.abstractmethod
    def start(self, video: VideoInfo) -> None: ...

    @abc.abstractmethod
    def step(self, frame: Frame) -> list[Prediction]: ...

    def finish(self) -> list[Prediction]:
        return []

    def offline(self, clips: Sequence[tuple[VideoInfo, Sequence[Frame]]]) -> list[list[Prediction]]:
        """The ``offline`` scenario (batch N): every frame of N videos is available at once;
        returns each video's predictions, exactly what ``start``/``step``/``finish`` would give
        (the harness checks it). This default streams the videos one after another; a method
        with a batch axis overrides it to run them together."""
        out = []
        for info, frames in clips:
            self.start(info)
            out.append([p for frame in frames for p in self.step(frame)] + self.finish())
        return out

    @abc.abstractmethod
    def modules(self) -> dict[str, torch.nn.Module]:
        """The networks this method runs, by name, for parameter counts and device moves."""

    def to(self, device: str) -> Method:
        """Move every module to ``device``; the harness calls this and moves frames itself.
        A method that keeps other tensors overrides it and moves those too."""
        for module in self.modules().values():
            module.to(device)
        self.device = device
        return self
