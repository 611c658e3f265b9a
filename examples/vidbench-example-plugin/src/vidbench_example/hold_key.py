"""``hold-key``: the per-frame network on key frames only, its segmentation held until the next key.

The "no propagation" floor of keyframe methods. A key frame runs the feature and the task
network, as ``frame`` does; every frame up to the next key repeats that key's class scores.
This is what propagating the key's features with zero motion would predict, without running
the task network again. Whatever a propagation method (``prop-mv``, ``prop-flow``,
``interp-mv``) gains over ``hold-key`` at the same interval is what its motion buys, and
``hold-key``'s speed is the ceiling of any method that runs the same network on the same keys:
its intermediate frames do no work.

It reuses vidbench's seed-000 pieces: ``SegmentationMethod`` trains (once per option set,
cached) and holds the per-frame network, and meters its two halves as ``feature`` and
``task``. Its options are ``frame``'s (``SegmentationConfig``), so ``hold-key`` and ``frame``
with the same options share one trained checkpoint, and at interval 1 they predict the same.
"""

from __future__ import annotations

import torch
from vidbench.api import Frame, SegmentationPrediction, VideoInfo
from vidbench.methods.segmentation.feature_reuse import SegmentationConfig, SegmentationMethod


class HoldKey(SegmentationMethod):
    """Feature and task network on key frames only; every other frame repeats the previous
    key's class scores (no motion, no warp: the floor that propagation is measured against)."""

    name = "hold-key"
    task = "segmentation"
    components = ("feature", "task")
    Config = SegmentationConfig
    uses_keyframes = True
    smoke = {"train_steps": "3"}

    def start(self, video: VideoInfo) -> None:
        super().start(video)
        self.held: torch.Tensor | None = None

    def step(self, frame: Frame) -> list[SegmentationPrediction]:
        if frame.is_key or self.held is None:
            prediction = self.segment(frame.index, self.features(frame), key=True)
            self.held = prediction.scores
            return [prediction]
        return [SegmentationPrediction(frame.index, self.held, {"key": False})]
