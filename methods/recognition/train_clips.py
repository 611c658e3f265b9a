"""Training clips for recognition methods: every train video's sampled frames decoded once into
one uint8 tensor, served as shuffled float batches (B, T, 3, H, W) with their class ids.

Training augmentation is the dataset's to declare: a train video may carry ``train_augment``
(``TrainAugment``: ``scales``, ``crop``, ``flip``). With ``scales`` the video also gives its
larger pre-crop frames (``augment_frames()``, (T, R, R, 3) uint8, AdaFocus: 256x256) and each
batch takes, per clip, one random crop whose height and width are each a share in ``scales``
of R (at most one step apart, AR-Net's / TSN's multi-scale crop), at a random place, resized
to ``crop`` x ``crop`` (sec. 4.1: "random scaling followed by 224x224 random cropping");
``flip`` mirrors the whole clip with probability 1/2. The same crop and flip apply to every
frame of a clip. Draws come from the batches' seeded generator, so training stays
deterministic.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm
from vidbench.api import Frame, VideoInfo, VideoSource


class TrainAugment(Protocol):
    """A dataset's training augmentation (``vidbench.datasets.recognition.sampled_video.
    TrainAugment``; read by attribute, as methods do not import datasets): multi-scale crop
    shares (empty: none) resized to ``crop``, and a horizontal flip with probability 1/2."""

    scales: tuple[float, ...]
    crop: int
    flip: bool


def clip_tensor(video: VideoSource) -> torch.Tensor:
    """(T, 3, H, W) uint8: the frames the dataset samples from ``video``, in order (the larger
    pre-crop frames when its ``train_augment`` crops)."""
    augment = getattr(video, "train_augment", None)
    if augment is not None and augment.scales:
        frames = np.asarray(video.augment_frames())
        return torch.from_numpy(frames.copy()).permute(0, 3, 1, 2).contiguous()
    frames = [video.frame(i).image for i in range(video.info.num_frames)]
    return (torch.stack(frames) * 255).round().to(torch.uint8)


def crop_sides(size: int, scales: Sequence[float], generator: torch.Generator) -> tuple[int, int]:
    """(height, width) of one multi-scale crop of a ``size`` square: each a share of ``size``
    from ``scales``, the two at most one step of ``scales`` apart."""
    sides = [max(1, int(size * s)) for s in scales]
    pairs = [(h, w) for i, h in enumerate(sides) for j, w in enumerate(sides) if abs(i - j) <= 1]
    return pairs[int(torch.randint(len(pairs), (1,), generator=generator))]


def augment_clips(
    clips: torch.Tensor, augment: TrainAugment | None, generator: torch.Generator
) -> torch.Tensor:
    """Float clips (B, T, 3, H, W) in [0, 1] with one random crop (resized to ``crop``) and flip
    per clip, as ``augment`` says; unchanged without it."""
    if augment is None or (not augment.scales and not augment.flip):
        return clips
    out = []
    for clip in clips:
        if augment.scales:
            size = min(clip.shape[-2:])
            height, width = crop_sides(size, augment.scales, generator)
            top = int(torch.randint(clip.shape[-2] - height + 1, (1,), generator=generator))
            left = int(torch.randint(clip.shape[-1] - width + 1, (1,), generator=generator))
            clip = clip[..., top : top + height, left : left + width]
            clip = F.interpolate(
                clip, size=(augment.crop, augment.crop), mode="bilinear", align_corners=False
            ).clamp(0.0, 1.0)
        if augment.flip and bool(torch.rand(1, generator=generator) < 0.5):
            clip = clip.flip(-1)
        out.append(clip)
    return torch.stack(out)


class TrainClips:
    """All train clips in memory (uint8, so 160 videos of 16 frames at 112² take 96 MB) and
    their first labels; ``batches(size, seed)`` makes a callable giving one shuffled epoch."""

    def __init__(self, videos: Sequence[VideoSource]) -> None:
        if not videos:
            raise ValueError("recognition training needs at least one train video")
        augments = {getattr(video, "train_augment", None) for video in videos}
        if len(augments) != 1:
            raise ValueError(f"train videos declare different augmentations: {augments}")
        self.augment: TrainAugment | None = augments.pop()
        clips, labels = [], []
        for video in tqdm(videos, desc="decode train clips", unit="video", leave=False):
            clips.append(clip_tensor(video))
            labels.append(int(video.label(None).labels[0]))
            release = getattr(video, "release", None)
            if release is not None:
                release()
        lengths = {clip.shape for clip in clips}
        if len(lengths) != 1:
            raise ValueError(f"train clips differ in shape: {sorted(lengths)}")
        self.clips = torch.stack(clips)
        self.labels = torch.tensor(labels, dtype=torch.int64)

    def __len__(self) -> int:
        return len(self.labels)

    def batches(self, size: int, seed: int, augment: bool = True) -> EpochBatches:
        """A callable: each call is one epoch of shuffled float batches (a fresh permutation
        per call, drawn from a generator seeded once), augmented as the dataset declares
        unless ``augment`` is False (then cropping datasets give their centre crop)."""
        return EpochBatches(self, size, seed, augment)


class EpochBatches:
    """One shuffled (and augmented) epoch of a ``TrainClips`` per call. Its generator's state is
    the whole of what earlier epochs leave to later ones, so a stage resumed from a cached
    checkpoint (``state`` saved with it, ``restore`` on load) sees the batches it would have."""

    def __init__(self, clips: TrainClips, size: int, seed: int, augment: bool) -> None:
        self.clips, self.size, self.augment = clips, size, augment
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        source = self.clips
        order = torch.randperm(len(source), generator=self.generator)
        for start in range(0, len(order), self.size):
            rows = order[start : start + self.size]
            clips = source.clips[rows].float() / 255
            if self.augment:
                clips = augment_clips(clips, source.augment, self.generator)
            elif source.augment is not None and source.augment.scales:
                clips = centre_crop(clips, source.augment.crop)
            yield clips, source.labels[rows]

    def state(self) -> torch.Tensor:
        """The generator's state after the epochs drawn so far."""
        return self.generator.get_state()

    def restore(self, state: torch.Tensor) -> None:
        """Continue as if the epochs behind ``state`` had been drawn here."""
        self.generator.set_state(state)


def centre_crop(clips: torch.Tensor, crop: int) -> torch.Tensor:
    """The central ``crop`` x ``crop`` window of (B, T, 3, H, W) clips."""
    top = round((clips.shape[-2] - crop) / 2.0)
    left = round((clips.shape[-1] - crop) / 2.0)
    return clips[..., top : top + crop, left : left + crop]


_LAST: dict[tuple[str, ...], TrainClips] = {}


def train_clips(videos: Sequence[VideoSource]) -> TrainClips:
    """The decoded clips of ``videos``, decoded once per process and shared by all the methods
    of a comparison (only the last train split is kept)."""
    files = tuple(str(getattr(v, "video_path", v.info.name)) for v in videos)
    if files not in _LAST:
        _LAST.clear()
        _LAST[files] = TrainClips(videos)
    return _LAST[files]


def clip_batch(clips: Sequence[tuple[VideoInfo, Sequence[Frame]]]) -> torch.Tensor | None:
    """The offline scenario's clips as one (N, T, 3, H, W) tensor, or None when their lengths
    differ (then a method streams them one by one)."""
    if len({len(frames) for _, frames in clips}) != 1:
        return None
    return torch.stack([torch.stack([f.image for f in frames]) for _, frames in clips])
