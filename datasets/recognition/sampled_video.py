"""One recognition video as the harness consumes it: T test-time frames sampled uniformly from a
JPEG frame folder or a video file (decoded with PyAV), resized and centre-cropped.

Sampling (``centre_indices``): the video's n frames are cut into T equal segments and the frame
at the centre of each is taken, 0-based index ``floor((2k + 1) * n / (2T))`` for k = 0..T-1.
This is the test-time rule of TSN that AR-Net (``ops/dataset.py`` ``_get_test_indices``:
``int(tick / 2 + tick * k)`` with ``tick = n / T``, then +1 for 1-based file names) and AdaFocus
("one centre frame per segment") use; it is written in integers here so that no floating-point
rounding can move an index. With n < T frames repeat (AR-Net does the same).

Pre-processing (AdaFocus sec. 4.1, "we resize all frames to 256x256 and centre-crop them to
224x224"; the public code's val transform is ``GroupScale(256)`` + ``GroupCenterCrop(224)``):
bilinear resize of both sides to ``resize`` x ``resize`` in ``square`` mode (the paper's, the
loaders' default), or of the shorter side to ``resize`` (the longer side to
``int(resize * long / short)``, torchvision's rule: the public code's), then a ``crop`` x
``crop`` centre crop with torchvision's ``round((size - crop) / 2)`` offsets. Train videos
also carry the training augmentation (``TrainAugment``) and their uncropped frames.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import av
import av.error
import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from vidbench.api import DataError, Frame, RecognitionTarget, VideoInfo

MOTION_GRID = 16
RESIZE_MODES = ("shorter", "square")


@dataclass(frozen=True)
class TrainAugment:
    """A dataset's training augmentation, applied by the methods' training loop (vidbench.
    methods.recognition.train_clips) to each clip: a random crop whose sides are each a share
    in ``scales`` of the pre-crop frame (at most one step apart), resized to ``crop`` (empty
    ``scales``: no crop), and a horizontal flip with probability 1/2 when ``flip``. AdaFocus
    sec. 4.1 (after AR-Net / TSN): random scaling, a 224x224 random crop, and flips on every
    dataset except Something-Something."""

    scales: tuple[float, ...] = ()
    crop: int = 0
    flip: bool = False

    def __post_init__(self) -> None:
        if any(not 0 < s <= 1 for s in self.scales):
            raise ValueError(f"train augmentation scales {self.scales} must lie in (0, 1]")
        if self.scales and self.crop < 1:
            raise ValueError(f"train augmentation with scales needs a crop size, got {self.crop}")


MULTI_SCALES = (1.0, 0.875, 0.75, 0.66)  # TSN / AR-Net GroupMultiScaleCrop shares


@dataclass(frozen=True)
class Preprocess:
    """Test-time resize and centre crop (AdaFocus: shorter side 256, crop 224)."""

    resize: int = 256
    crop: int = 224
    mode: str = "shorter"

    def __post_init__(self) -> None:
        if self.mode not in RESIZE_MODES:
            raise ValueError(f"resize mode is '{self.mode}'; allowed: {', '.join(RESIZE_MODES)}")
        if not 0 < self.crop <= self.resize:
            raise ValueError(f"crop {self.crop} must be positive and at most resize {self.resize}")


def centre_indices(num_frames: int, count: int) -> tuple[int, ...]:
    """0-based centre frame of each of ``count`` equal segments of ``num_frames`` (TSN/AR-Net)."""
    if num_frames < 1 or count < 1:
        raise ValueError(f"cannot sample {count} frames from a video of {num_frames} frames")
    return tuple((2 * k + 1) * num_frames // (2 * count) for k in range(count))


def resized_size(width: int, height: int, preprocess: Preprocess) -> tuple[int, int]:
    """(width, height) after the resize step, before the centre crop."""
    if preprocess.mode == "square":
        return preprocess.resize, preprocess.resize
    if width <= height:
        return preprocess.resize, int(preprocess.resize * height / width)
    return int(preprocess.resize * width / height), preprocess.resize


def resize_crop(image: Image.Image, preprocess: Preprocess) -> np.ndarray:
    """(crop, crop, 3) uint8 RGB: the image resized as configured, then centre-cropped."""
    size = resized_size(image.width, image.height, preprocess)
    resized = image.convert("RGB").resize(size, Image.Resampling.BILINEAR)
    left = int(round((size[0] - preprocess.crop) / 2.0))
    top = int(round((size[1] - preprocess.crop) / 2.0))
    box = (left, top, left + preprocess.crop, top + preprocess.crop)
    return np.asarray(resized.crop(box), dtype=np.uint8)


def load_jpeg(path: Path, preprocess: Preprocess, layout: str) -> np.ndarray:
    """Read one frame file fully (so truncation shows) and pre-process it; DataError names it."""
    try:
        with Image.open(path) as image:
            image.load()
            return resize_crop(image, preprocess)
    except FileNotFoundError:
        raise DataError(f"{path}: frame file missing (partial frame folder?); {layout}.") from None
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as error:
        raise DataError(f"{path}: unreadable or truncated image ({error}); {layout}.") from None


def frame_pattern(template: str) -> re.Pattern[str]:
    """A regex matching the file names of ``template`` (e.g. ``image_{:05d}.jpg``), the frame
    number as group 1."""
    match = re.fullmatch(r"(.*)\{:0(\d)d\}(.*)", template)
    if match is None:
        raise ValueError(f"frame template '{template}' must contain one {{:0Nd}} field")
    prefix, width, suffix = match.groups()
    return re.compile(f"^{re.escape(prefix)}(\\d{{{width}}}){re.escape(suffix)}$")


@dataclass(frozen=True)
class FrameFolder:
    """Frames as ``folder / template.format(i)`` for i = 1..n (1-based, ffmpeg numbering);
    ``num_frames`` None: counted from the folder when first needed (Sth-Sth V1)."""

    folder: Path
    template: str
    num_frames: int | None

    def count(self, layout: str) -> int:
        """n: the listed count, else the files 1..n present without a gap."""
        if self.num_frames is not None:
            return self.num_frames
        pattern = frame_pattern(self.template)
        try:
            names = os.listdir(self.folder)
        except OSError as error:
            raise DataError(
                f"{self.folder}: cannot list the frame folder ({error}); {layout}."
            ) from None
        found = sorted(int(m.group(1)) for m in map(pattern.match, names) if m)
        if not found:
            raise DataError(f"{self.folder}: no {self.template} frames; {layout}.")
        if found != list(range(1, len(found) + 1)):
            gap = min(set(range(1, found[-1] + 1)) - set(found))
            raise DataError(f"{self.folder / self.template.format(gap)}: frame missing; {layout}.")
        return len(found)

    def read(self, count: int, preprocess: Preprocess, layout: str) -> np.ndarray:
        """(count, S, S, 3) uint8: the sampled frames, pre-processed."""
        indices = centre_indices(self.count(layout), count)
        paths = [self.folder / self.template.format(i + 1) for i in indices]
        return np.stack([load_jpeg(path, preprocess, layout) for path in paths])


@dataclass(frozen=True)
class VideoFile:
    """A compressed video (mp4, webm, ...) decoded with PyAV; every frame is decoded in display
    order (the count n is only known after decoding, webm does not store it) and pre-processed
    on the fly, so only S x S frames are held."""

    path: Path

    def read(self, count: int, preprocess: Preprocess, layout: str) -> np.ndarray:
        """(count, S, S, 3) uint8: the sampled frames, pre-processed."""
        frames, expected = self._decode(preprocess, layout)
        if expected and len(frames) < expected:
            raise DataError(
                f"{self.path}: truncated, decoded {len(frames)} of the {expected} frames the "
                f"container records; {layout}."
            )
        return np.stack([frames[i] for i in centre_indices(len(frames), count)])

    def _decode(self, preprocess: Preprocess, layout: str) -> tuple[list[np.ndarray], int]:
        if not self.path.is_file():
            raise DataError(f"{self.path}: video file missing; {layout}.")
        frames: list[np.ndarray] = []
        try:
            with av.open(str(self.path)) as container:
                if not container.streams.video:
                    raise DataError(f"{self.path}: no video stream in the file; {layout}.")
                stream = container.streams.video[0]
                for decoded in container.decode(stream):
                    frames.append(resize_crop(decoded.to_image(), preprocess))
                expected = stream.frames
        except (av.error.FFmpegError, OSError) as error:
            raise DataError(
                f"{self.path}: undecodable video after {len(frames)} frames ({error}); {layout}."
            ) from None
        if not frames:
            raise DataError(f"{self.path}: no frame could be decoded; {layout}.")
        return frames, expected


class RecognitionVideo:
    """A ``VideoSource`` of T sampled frames: ``frame(t)`` is the t-th sampled frame as a (3, S, S)
    float32 tensor in [0, 1] without motion, ``label(any)`` the video's classes. Frames are read
    together on first use and kept until ``release``; unreadable data raises DataError then.
    A train video carries the dataset's ``train_augment`` and gives its uncropped frames
    (``augment_frames``) for it."""

    def __init__(
        self,
        name: str,
        labels: tuple[int, ...],
        source: FrameFolder | VideoFile,
        count: int,
        preprocess: Preprocess,
        layout: str,
        train_augment: TrainAugment | None = None,
    ) -> None:
        self.name = name
        self.source = source
        self.train_augment = train_augment
        self.preprocess = preprocess
        self.layout = layout
        self.target = RecognitionTarget(np.asarray(sorted(labels), dtype=np.int64))
        self.label_indices = tuple(range(count))
        crop = preprocess.crop
        self.info = VideoInfo(name, crop, crop, count, float("nan"))

    @cached_property
    def _frames(self) -> np.ndarray:
        return self.source.read(len(self.label_indices), self.preprocess, self.layout)

    def augment_frames(self) -> np.ndarray:
        """(T, R, R, 3) uint8: the sampled frames resized to ``resize`` x ``resize`` without the
        centre crop, from which training takes its random crops (``train_augment``)."""
        square = Preprocess(self.preprocess.resize, self.preprocess.resize, "square")
        return self.source.read(len(self.label_indices), square, self.layout)

    def frame(self, index: int, is_key: bool = False) -> Frame:
        """The ``index``-th sampled frame (0..T-1)."""
        if not 0 <= index < len(self.label_indices):
            raise IndexError(f"{self.name}: frame {index} of {len(self.label_indices)} samples")
        image = torch.from_numpy(self._frames[index].copy()).permute(2, 0, 1).float().div_(255)
        return Frame(index, image, None, None, MOTION_GRID, is_key)

    def label(self, index: int | None = None) -> RecognitionTarget:
        """The video's classes (ascending ids), whatever the frame."""
        return self.target

    def release(self) -> None:
        """Drop the decoded frames (read again on next use)."""
        self.__dict__.pop("_frames", None)
