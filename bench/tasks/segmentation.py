"""Semantic segmentation (seed 000): per-pixel class scores, mIoU per keyframe offset."""

from __future__ import annotations

from typing import Any

import torch
from vidbench.api import SegmentationPrediction, VideoInfo
from vidbench.protocols import RotatingOffset
from vidbench.seg_eval import SegmentationEvaluator
from vidbench.tasks import CiRun, Headline, Task


class Segmentation(Task):
    """Scores ``SegmentationPrediction``s with ``rotating-offset@v1``; speed on ``stream@v2``."""

    name = "segmentation"
    prediction_type = SegmentationPrediction
    cost_unit = "frame"
    protocol = RotatingOffset()
    headline = (
        Headline("seg/miou_avg", "mIoU (avg.) (%)", 2.0),
        Headline("seg/miou_min", "mIoU (min.) (%)", 4.0),
    )
    per_stratum_metric = "seg/miou_per_offset"
    worst_metric = "seg/miou_min"
    default_dataset = "synthcity"
    speed_baseline = "frame"
    baseline_shares = (
        "layers", "width", "expansion", "deformable", "stem", "train_steps", "recipe",
        "train_epochs", "imagenet_weights", "mmseg_weights", "train_device",
    )
    must_count = ("feature", "warp", "task")
    report = "vidbench.report.segmentation:render"
    ci = CiRun(
        dataset="synthcity",
        dataset_options={"train_videos": "12", "val_videos": "12", "height": "96", "width": "192"},
        methods=(
            "frame:train_steps=200",
            "prop-mv:train_steps=200",
            "interp-mv:train_steps=200:fusion_steps=60",
            "prop-flow:train_steps=200:flownet_pretrain_steps=150:flownet_finetune_steps=60",
        ),
        intervals=(1, 3, 6),
    )

    def evaluator(self, dataset: Any) -> SegmentationEvaluator:
        return SegmentationEvaluator(dataset.num_classes, dataset.ignore_index)

    def check_prediction(self, prediction: Any, video: VideoInfo, num_classes: int) -> None:
        if not isinstance(prediction, SegmentationPrediction):
            raise ValueError(f"Expected a SegmentationPrediction, got {type(prediction).__name__}.")
        expected = (num_classes, video.height, video.width)
        if tuple(prediction.scores.shape) != expected:
            raise ValueError(f"Scores of shape {tuple(prediction.scores.shape)}, not {expected}.")
        if not torch.allclose(prediction.scores.sum(0), torch.ones(()), atol=1e-4):
            raise ValueError("Scores are not probabilities: they do not sum to 1 per pixel.")

    def agreement(self, a: SegmentationPrediction, b: SegmentationPrediction) -> float:
        """Fraction of pixels with the same arg-max label."""
        return float((a.labels() == b.labels()).mean())
