"""Per-frame baseline (seed 000, sec. 4.2): the full network on every frame."""

from __future__ import annotations

from vidbench.api import Frame, SegmentationPrediction
from vidbench.methods.segmentation.feature_reuse import SegmentationConfig, SegmentationMethod


class FrameBaseline(SegmentationMethod):
    """Feature network and task network on every frame; ignores the keyframe schedule."""

    name = "frame"
    components = ("feature", "task")
    Config = SegmentationConfig
    uses_keyframes = False

    def step(self, frame: Frame) -> list[SegmentationPrediction]:
        return [self.segment(frame.index, self.features(frame), key=True)]
