"""interp-mv: bi-directional feature interpolation with block motion vectors (seed 000,
sec. 3.5-3.6, Algorithm 2).

Both enclosing keyframes run the feature network; intermediate frame k+p gets the previous
key's features warped forward over frames k+1..k+p and the next key's features warped back
over frames k+n..k+p+1, fused as F(alpha*f_fwd, (1-alpha)*f_bwd) with alpha = (n-p)/n.

Streaming: intermediate frames are buffered until the next keyframe arrives, then emitted
(a delay of up to n frames, which the harness measures). Frames after the last keyframe of a
video have no next key; ``finish`` emits them by forward propagation alone (alpha = 1).

Fusion (sec. 3.6): ``avg`` is the weighted sum alpha*f_fwd + (1-alpha)*f_bwd (the authors'
research code sums the weighted maps); ``max`` is the element-wise max of the two maps, each
scaled by its weight over the larger weight so the nearer key's map keeps its scale (the
paper weights before max but does not say how it keeps the scale: our reading); ``conv`` is a
learned 1x1 conv over the stacked weighted maps that takes over the task network's first
layer, trained as in sec. 4.1 with a labelled frame between a preceding and a succeeding key.
``forward`` and ``backward`` use one direction's warped map alone (Table 2's first columns:
propagation from the preceding key only, or from the succeeding key only).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch.nn import functional as F
from tqdm import tqdm
from vidbench.api import Frame, SegmentationPrediction, VideoInfo, VideoSource, Workspace
from vidbench.methods.segmentation.deeplab import ConvFusion, SegmentationNetwork
from vidbench.methods.segmentation.feature_reuse import (
    IGNORE_INDEX,
    SegmentationConfig,
    SegmentationMethod,
    descend,
    motion_on_feature_grid,
    propagate,
)

Fusion = Literal["conv", "avg", "max", "forward", "backward"]


@dataclass(frozen=True)
class InterpConfig(SegmentationConfig):
    """Fusion operator and, for ``conv``, its training recipe."""

    fusion: Fusion = "conv"
    fusion_steps: int = 300
    fusion_lr: float = 1e-4
    fusion_max_interval: int = 10


def interpolate_features(
    previous_key: torch.Tensor,
    next_key: torch.Tensor,
    forward_motion: Sequence[torch.Tensor],
    backward_motion: Sequence[torch.Tensor],
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Forward and backward warped features for the n-1 frames between two keys.

    ``forward_motion[j]`` is the field of frame k+1+j (j < n-1); ``backward_motion[j]`` is the
    field of frame k+n-j (j < n-1). Returns two lists indexed by p-1 for p = 1..n-1.
    """
    forward = propagate(previous_key, forward_motion)
    backward = propagate(next_key, [-field for field in backward_motion])[::-1]
    return forward, backward


def fuse_simple(
    kind: Fusion, forward: torch.Tensor, backward: torch.Tensor, alpha: float
) -> torch.Tensor:
    """Parameter-free fusion of the weighted maps (see the module docstring)."""
    if kind in ("forward", "backward"):  # Table 2's one-directional columns: no fusion
        return forward if kind == "forward" else backward
    if kind == "avg":
        return alpha * forward + (1 - alpha) * backward
    top = max(alpha, 1 - alpha)
    return torch.maximum(alpha / top * forward, (1 - alpha) / top * backward)


def fusion_samples(
    videos: Sequence[VideoSource], max_interval: int
) -> list[tuple[VideoSource, int, int, int]]:
    """Every (video, labelled frame L, interval n, offset p) with both keys inside the video."""
    samples = []
    for video in videos:
        for label in video.label_indices:
            for n in range(2, max_interval + 1):
                for p in range(1, n):
                    if label - p >= 0 and label - p + n < video.info.num_frames:
                        samples.append((video, label, n, p))
    return samples


def train_conv_fusion(
    videos: Sequence[VideoSource],
    net: SegmentationNetwork,
    config: InterpConfig,
    seed: int,
    path: Path,
) -> None:
    """Sec. 4.1: a labelled frame with a preceding and a succeeding keyframe; only the fusion
    layer learns (initialised as average fusion), the loss is on the labelled frame."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    samples = fusion_samples(videos, config.fusion_max_interval)
    if not samples:
        raise ValueError("No (labelled frame, key pair) fits in the training videos.")
    fusion = ConvFusion(net.task.project)
    optimiser = torch.optim.Adam(fusion.parameters(), lr=config.fusion_lr)
    batch_size, losses = 4, []
    for _ in tqdm(range(config.fusion_steps), desc="train conv fusion", unit="step"):
        stacked, labels = [], []
        for i in rng.integers(len(samples), size=batch_size):
            video, label, n, p = samples[i]
            key = label - p
            with torch.no_grad():
                frames = [video.frame(index) for index in range(key, key + n + 1)]
                features = net.features(torch.stack([frames[0].image, frames[n].image]))
                motion = [motion_on_feature_grid(frame) for frame in frames]
                forward, backward = interpolate_features(
                    features[:1], features[1:], motion[1:n], motion[n:1:-1]
                )
            alpha = (n - p) / n
            stacked.append((alpha * forward[p - 1], (1 - alpha) * backward[p - 1]))
            labels.append(torch.from_numpy(video.label(label)).long())
        projected = fusion(torch.cat([f for f, _ in stacked]), torch.cat([b for _, b in stacked]))
        size = (labels[0].shape[0], labels[0].shape[1])
        losses.append(
            descend(
                optimiser,
                F.cross_entropy(
                    net.task.logits(projected, size), torch.stack(labels), ignore_index=IGNORE_INDEX
                ),
            )
        )
    torch.save({"state_dict": fusion.state_dict(), "losses": losses}, path)


class InterpMV(SegmentationMethod):
    """Algorithm 2 as a stream: buffer intermediate frames, fuse when the next key arrives."""

    name = "interp-mv"
    smoke = {"train_steps": "3", "fusion_steps": "2"}
    components = ("feature", "motion", "warp", "fusion", "task")
    Config = InterpConfig
    needs_next_keyframe = True

    def __init__(self, config: InterpConfig, workspace: Workspace) -> None:
        super().__init__(config, workspace)
        self.fusion: ConvFusion | None = None
        if config.fusion == "conv":
            key = {
                "net": self.net.config.to_dict(),
                "train_steps": config.train_steps,
                "fusion": asdict(config),
                "seed": workspace.seed,
            }
            net = self.net
            path = workspace.checkpoint(
                "conv-fusion",
                key,
                lambda out: train_conv_fusion(
                    workspace.train_videos(), net, config, workspace.seed, out
                ),
            )
            self.fusion = ConvFusion(self.net.task.project)
            self.fusion.load_state_dict(
                torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
            )
            self.fusion.eval()

    def modules(self) -> dict[str, torch.nn.Module]:
        extra = {"fusion": self.fusion} if self.fusion is not None else {}
        return {**super().modules(), **extra}

    def start(self, video: VideoInfo) -> None:
        super().start(video)
        self.key_features: torch.Tensor | None = None
        self.pending: list[tuple[int, torch.Tensor]] = []

    def step(self, frame: Frame) -> list[SegmentationPrediction]:
        if self.key_features is not None and not frame.is_key:
            self.pending.append((frame.index, self.motion(frame)))
            return []
        features = self.features(frame)
        emitted = self._interpolate(features, self.motion(frame)) if self.pending else []
        self.key_features, self.pending = features, []
        return emitted + [self.segment(frame.index, features, key=True)]

    def finish(self) -> list[SegmentationPrediction]:
        if self.key_features is None or not self.pending:
            return []
        with self.meter("warp"):
            chain = propagate(self.key_features, [motion for _, motion in self.pending])
        emitted = [
            self.segment(index, features, key=False)
            for (index, _), features in zip(self.pending, chain)
        ]
        self.pending = []
        return emitted

    def _interpolate(
        self, next_key: torch.Tensor, next_motion: torch.Tensor
    ) -> list[SegmentationPrediction]:
        motions = [motion for _, motion in self.pending]
        n = len(motions) + 1
        with self.meter("warp"):
            forward, backward = interpolate_features(
                self.key_features, next_key, motions, [next_motion, *motions[:0:-1]]
            )
        emitted = []
        for p, (index, _) in enumerate(self.pending, start=1):
            alpha = (n - p) / n
            emitted.append(self._fused_prediction(index, forward[p - 1], backward[p - 1], alpha))
        return emitted

    def _fused_prediction(
        self, index: int, forward: torch.Tensor, backward: torch.Tensor, alpha: float
    ) -> SegmentationPrediction:
        if self.fusion is None:
            with self.meter("fusion"):
                fused = fuse_simple(self.config.fusion, forward, backward, alpha)
            return self.segment(index, fused, key=False)
        with self.meter("fusion"):
            projected = self.fusion(alpha * forward, (1 - alpha) * backward)
        with self.meter("task"):
            scores = self.net.task.logits(projected, self.size).softmax(1)[0]
        return SegmentationPrediction(index, scores, {"key": False})
