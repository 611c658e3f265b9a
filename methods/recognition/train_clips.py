"""Training clips for recognition methods: every train video's sampled frames decoded once into
one uint8 tensor, served as shuffled float batches (B, T, 3, H, W) with their class ids."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import torch
from tqdm import tqdm
from vidbench.api import Frame, VideoInfo, VideoSource

Batches = Callable[[], Iterator[tuple[torch.Tensor, torch.Tensor]]]


def clip_tensor(video: VideoSource) -> torch.Tensor:
    """(T, 3, H, W) uint8: the frames the dataset samples from ``video``, in order."""
    frames = [video.frame(i).image for i in range(video.info.num_frames)]
    return (torch.stack(frames) * 255).round().to(torch.uint8)


class TrainClips:
    """All train clips in memory (uint8, so 160 videos of 16 frames at 112² take 96 MB) and
    their first labels; ``batches(size, seed)`` makes a callable giving one shuffled epoch."""

    def __init__(self, videos: Sequence[VideoSource]) -> None:
        if not videos:
            raise ValueError("recognition training needs at least one train video")
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

    def batches(self, size: int, seed: int) -> Batches:
        """A callable: each call is one epoch of shuffled float batches (a fresh permutation
        per call, drawn from a generator seeded once)."""
        generator = torch.Generator().manual_seed(seed)

        def epoch() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
            order = torch.randperm(len(self), generator=generator)
            for start in range(0, len(order), size):
                rows = order[start : start + size]
                yield self.clips[rows].float() / 255, self.labels[rows]

        return epoch



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
