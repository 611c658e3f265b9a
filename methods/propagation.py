"""prop-mv: feature propagation with block motion vectors (seed 000, sec. 3.3, Algorithm 1).

Keyframes run the feature network; every other frame warps the previous frame's features one
frame forward with its own codec motion field (incrementally, as the authors' research code
does), then runs the task network.
"""

from __future__ import annotations

import torch

from vidbench.api import Frame, SegmentationPrediction, VideoInfo
from vidbench.methods.feature_reuse import SegmentationConfig, SegmentationMethod
from vidbench.methods.deeplab import OUTPUT_STRIDE
from vidbench.methods.warp import warp


class PropMV(SegmentationMethod):
    """Algorithm 1: f_i = N_feat(I_i) on keyframes, else warp(f_{i-1}, motion of frame i)."""

    name = "prop-mv"
    components = ("feature", "motion", "warp", "task")
    Config = SegmentationConfig

    def start(self, video: VideoInfo) -> None:
        super().start(video)
        self.cached: torch.Tensor | None = None

    def step(self, frame: Frame) -> list[SegmentationPrediction]:
        key = frame.is_key or self.cached is None
        if key:
            features = self.features(frame)
        else:
            displacement = self.motion(frame, self.cached)
            with self.meter("warp"):
                features = warp(self.cached, displacement, OUTPUT_STRIDE)
        self.cached = features
        return [self.segment(frame.index, features, key)]
